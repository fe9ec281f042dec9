"""The Agents service: model providers, agent profiles, conversations, chat and usage."""
