"""`python -m forge_client.cli` runs the `forge` command."""

from forge_client.cli.main import main

main()
