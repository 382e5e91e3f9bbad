"""Strict YAML loading: safe constructors, duplicate keys rejected, line numbers kept.

Every mapping loads as a `LineDict`, a dict that remembers the 1-based line of each
key, so validation errors can point at the exact line of a bad value.

Anchors and aliases are refused (an alias "bomb" of a few hundred bytes expands to
gigabytes once anything walks it), nesting is bounded by `MAX_YAML_DEPTH` and a file
by `MAX_FILE_BYTES`: over a limit is a located error, never a RecursionError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode

from engine.errors import Problem, SourceErrors, rel


class LineDict(dict[str, Any]):
    """A dict that knows the source line of each of its keys."""

    line: int = 0
    key_lines: dict[str, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines = {}


MAX_FILE_BYTES = 256 * 1024
"""Largest YAML file Steward reads (rules, event rules, config, risk sheets)."""
MAX_YAML_DEPTH = 32
"""Deepest nesting of mappings and lists in a YAML file."""


class _StrictLoader(yaml.SafeLoader):  # type: ignore[misc]
    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (& and *) are not allowed: write the value out", event.start_mark
            )
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested too deeply (limit {MAX_YAML_DEPTH})", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader: _StrictLoader, node: MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            key = str(key)
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def loads(text: str, path: str = "<string>") -> Any:
    """Parse YAML text strictly; raise SourceErrors naming path and line on failure."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - strict safe subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise SourceErrors([Problem(path, line, "", f"invalid YAML: {e.problem or e}")]) from e
    except yaml.YAMLError as e:
        raise SourceErrors([Problem(path, None, "", f"invalid YAML: {e}")]) from e
    except RecursionError as e:  # belt and braces: compose_node bounds the depth
        raise SourceErrors([Problem(path, None, "", f"nested too deeply (limit {MAX_YAML_DEPTH})")]) from e


def read_text(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    """A user file as UTF-8 text; SourceErrors if it is not a file, too large or not UTF-8."""
    try:
        if not path.is_file():
            raise SourceErrors([Problem(rel(path), None, "", "not a file")])
        size = path.stat().st_size
        if size > limit:
            raise SourceErrors([Problem(rel(path), None, "", f"file is {size} bytes, too large (limit {limit})")])
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise SourceErrors([Problem(rel(path), line, "", "file is not UTF-8 text: save it as UTF-8")]) from e
    except OSError as e:
        raise SourceErrors([Problem(rel(path), None, "", f"cannot read: {e.strerror}")]) from e


def load_file(path: Path) -> Any:
    return loads(read_text(path), rel(path))


def line_of(data: Any, loc: tuple[Any, ...]) -> int | None:
    """Best line for a pydantic error location inside LineDicts."""
    line = getattr(data, "line", None)
    node = data
    for part in loc:
        if isinstance(node, LineDict) and isinstance(part, str):
            line = node.key_lines.get(part, line)
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            line = getattr(node, "line", line)
        else:
            break
    return line
