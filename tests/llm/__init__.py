"""Tests of the LLM provider package (server/llm)."""
