"""The command-line interface: thin Typer apps over the core, one module per command group."""
