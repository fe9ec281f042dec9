"""Forge: the async gRPC backend of an AI coding-agent platform."""
