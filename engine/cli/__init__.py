"""The `steward` command."""

from engine.cli.app import app, main

__all__ = ["app", "main"]
