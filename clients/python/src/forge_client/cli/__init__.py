"""The `forge` command line, on forge_client's sync client (typer + rich)."""
