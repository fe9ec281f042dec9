"""Agent runs: an autonomous loop that calls a model with tools, executes the tool calls in a
sandbox and other services (through ports), and records every step as a durable event."""
