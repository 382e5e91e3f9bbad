"""engine/ in wings: which wing may import which, no import circle, no oversized module.

The table below is the architecture; docs/architecture.md explains it. A new import
that crosses it fails here with the importing file and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

GROUND = "ground"
"""engine/*.py beside the wings and engine/config/: errors, clock, yamlio, config, db, models, docgen."""

BELOW: dict[str, set[str]] = {
    GROUND: set(),
    "audit": {GROUND},
    "facts": {GROUND},
    "language": {GROUND, "facts"},
    "pipeline": {GROUND, "facts", "language", "audit"},
    "compliance": {GROUND, "audit", "facts", "language", "pipeline"},
    "dispatch": {GROUND, "audit", "facts", "language", "pipeline"},
    "servicing": {GROUND, "audit", "facts", "language", "pipeline", "dispatch"},
    "events": {GROUND, "audit", "facts", "language", "pipeline", "compliance", "dispatch", "servicing"},
    "supervision": {GROUND, "audit", "facts", "language", "pipeline", "compliance", "dispatch", "servicing", "events"},
    "composition": {GROUND, "audit", "facts", "language", "pipeline", "compliance", "dispatch", "servicing", "events",
                    "supervision"},
    "demo": {GROUND, "audit", "facts", "language", "pipeline", "compliance", "dispatch", "servicing", "events",
             "supervision", "composition"},
    "scheduler": {GROUND, "audit", "facts", "language", "pipeline", "compliance", "dispatch", "servicing", "events",
                  "supervision", "composition"},
    "web": {GROUND, "audit", "facts", "language", "pipeline", "compliance", "dispatch", "servicing", "events",
            "supervision", "composition", "scheduler"},
    "cli": {GROUND, "audit", "facts", "language", "pipeline", "compliance", "dispatch", "servicing", "events",
            "supervision", "composition", "demo", "scheduler", "web"},
}
"""Wing -> the wings it may import (besides itself)."""

THIRD_PARTY_OWNERS = {"durable": {"engine.events.durable"}}
"""A library that only one module may import (STYLE.md: each core library behind one module)."""

MAX_LINES = 600


def wing_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "scheduler":
        return "scheduler"
    if len(parts) == 1 or parts[1] == "config":
        return GROUND
    if parts[1] in BELOW:
        return parts[1]
    if len(parts) == 2:  # a module beside the wings
        return GROUND
    raise AssertionError(f"{module}: engine/{parts[1]}/ is not a wing; add it to BELOW in tests/test_layering.py")


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (resolved to a module when `from pkg import submodule`)
    path: Path
    line: int
    top_level: bool


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, path: Path, known: set[str]) -> Iterator[Import]:
    tree = ast.parse(source, str(path))
    nested: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.If)):
            is_type_check = isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            if not isinstance(node, ast.If) or is_type_check:
                nested.update(id(n) for n in ast.walk(node) if n is not node)
    for node in ast.walk(tree):
        top = id(node) not in nested
        if isinstance(node, ast.Import):
            for a in node.names:
                yield Import(module, a.name, path, node.lineno, top)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                yield Import(module, sub if sub in known else node.module, path, node.lineno, top)


def project_imports(paths: Iterable[Path], root: Path) -> list[Import]:
    files = {module_name(p, root): p for p in paths}
    out: list[Import] = []
    for mod, p in files.items():
        out += imports_of(p.read_text(encoding="utf-8"), mod, p, set(files))
    return out


def violations(imports: Iterable[Import]) -> list[str]:
    problems = []
    for i in imports:
        top = i.target.split(".")[0]
        if top in THIRD_PARTY_OWNERS and i.source not in THIRD_PARTY_OWNERS[top]:
            problems.append(f"{i.path}:{i.line}: {i.source} imports {i.target}; only "
                            f"{sorted(THIRD_PARTY_OWNERS[top])} may")
        if top not in ("engine", "scheduler"):
            continue
        src, dst = wing_of(i.source), wing_of(i.target)
        if src != dst and dst not in BELOW[src]:
            problems.append(f"{i.path}:{i.line}: {i.source} ({src}) imports {i.target} ({dst}); "
                            f"{src} may import only {sorted(BELOW[src])}")
    return problems


def cycles(imports: Iterable[Import]) -> list[list[str]]:
    """Import circles among module-level imports (Tarjan's strongly connected components)."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        if i.top_level and i.target.split(".")[0] in ("engine", "scheduler") and i.target != i.source:
            graph.setdefault(i.source, set()).add(i.target)
            graph.setdefault(i.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _sources() -> list[Path]:
    return sorted([*(ROOT / "engine").rglob("*.py"), *(ROOT / "scheduler").rglob("*.py")])


def test_every_import_respects_the_wings() -> None:
    problems = violations(project_imports(_sources(), ROOT))
    assert not problems, "imports that cross the wings:\n" + "\n".join(problems)


def test_no_import_circle() -> None:
    found = cycles(project_imports(_sources(), ROOT))
    assert not found, f"import circles: {found}"


def test_no_module_over_the_size_limit() -> None:
    big = {str(p.relative_to(ROOT)): n for p in _sources() if (n := len(p.read_text(encoding="utf-8").splitlines()))
           > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them by concern): {big}"


def test_every_wing_says_what_it_owns_and_may_import() -> None:
    for pkg in sorted(p for p in (ROOT / "engine").iterdir() if (p / "__init__.py").exists()):
        doc = ast.get_docstring(ast.parse((pkg / "__init__.py").read_text(encoding="utf-8"))) or ""
        assert "Owns" in doc and "import" in doc, f"engine/{pkg.name}/__init__.py: say what the wing owns and may import"
        if pkg.name != "config":
            assert pkg.name in BELOW, f"engine/{pkg.name}/ is not in the wing table"


# ------------------------------------------------------------------ the checker itself can fail


def _fake(tmp_path: Path, files: dict[str, str]) -> list[Import]:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return project_imports(sorted(tmp_path.rglob("*.py")), tmp_path)


@pytest.mark.parametrize(("rel", "text", "expected"), [
    ("engine/facts/base.py", "from engine.dispatch import outbox\n", "facts may import only"),
    ("engine/language/expr.py", "from engine.pipeline.run import run\n", "language may import only"),
    ("engine/audit/log.py", "import engine.facts.base\n", "audit may import only"),
    ("engine/pipeline/run.py", "def f():\n    from engine.cli import app\n", "pipeline may import only"),
    ("engine/dispatch/outbox.py", "from engine.compliance import review\n", "dispatch may import only"),
    ("engine/errors.py", "from engine.facts import base\n", "ground may import only"),
    ("engine/facts/base.py", "import durable\n", "only ['engine.events.durable'] may"),
])
def test_a_wrong_import_is_reported_with_file_and_line(tmp_path: Path, rel: str, text: str, expected: str) -> None:
    files = {"engine/__init__.py": "", "engine/errors.py": "", "engine/facts/__init__.py": "",
             "engine/facts/base.py": "", "engine/dispatch/__init__.py": "", "engine/dispatch/outbox.py": "",
             "engine/compliance/__init__.py": "", "engine/compliance/review.py": "",
             "engine/pipeline/__init__.py": "", "engine/pipeline/run.py": "", "engine/cli/__init__.py": "",
             "engine/cli/app.py": "", "engine/language/__init__.py": "", "engine/language/expr.py": "",
             "engine/audit/__init__.py": "", "engine/audit/log.py": ""}
    files[rel] = text
    problems = violations(_fake(tmp_path, files))
    assert len(problems) == 1 and expected in problems[0] and f"{rel}:" in problems[0], problems


def test_an_import_circle_is_found(tmp_path: Path) -> None:
    imports = _fake(tmp_path, {"engine/__init__.py": "", "engine/pipeline/__init__.py": "",
                               "engine/pipeline/run.py": "from engine.pipeline import policy\n",
                               "engine/pipeline/policy.py": "import engine.pipeline.run\n",
                               "engine/pipeline/lazy.py": "def f():\n    import engine.pipeline.run\n"})
    assert cycles(imports) == [["engine.pipeline.policy", "engine.pipeline.run"]]
