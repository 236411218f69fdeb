"""The command line: a typer app; one thin module per command group (see app.py)."""
