"""Tests of the Artifacts service: blob stores and code-block extraction."""
