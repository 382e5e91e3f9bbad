"""`steward docs write`: regenerate the generated documentation files."""

from __future__ import annotations

from pathlib import Path

import typer

from engine import docgen
from engine.cli.common import console

app = typer.Typer(no_args_is_help=True)


@app.command("write")
def write(docs_dir: Path = typer.Option(Path("docs"), "--dir", help="docs folder")) -> None:
    """Regenerate docs/facts.md (and any other generated page) from the code.

    Example:

      steward docs write
    """
    for p in docgen.write_all(docs_dir):
        console.print(f"wrote {p}")
