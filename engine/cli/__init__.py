"""The `steward` command (typer + rich): the top floor.

Owns one module per command group (`*_cmd.py`), the root options and registration
(`app`) and what they share (`common`: config, database, errors shown to the user).

May import every wing, engine.composition and the scheduler package; nothing imports cli.
"""

from engine.cli.app import app, main

__all__ = ["app", "main"]
