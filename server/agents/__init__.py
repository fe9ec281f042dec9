"""The Agents service: agent profiles, conversations, streaming chat and usage (models come
from server/llm)."""
