"""Reading YAML that may be hostile: bounded in size, nesting, alias expansion
and number length, no tags, every key's line recorded, parsed once.

A scenario is small (a 10,000-step one is about 200 KiB), so anything far
beyond what a person writes is refused before it can cost time or memory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ScenarioError

MAX_BYTES = 4 << 20
MAX_DEPTH = 32
#: nodes after alias expansion ("billion laughs" expands to 10**9)
MAX_NODES = 1_000_000
MAX_NUMBER_CHARS = 40

#: PyYAML's C loader where it is built (it gives the same marks, faster)
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NUMBER = re.compile(r"^[-+]?(0[xob][0-9a-fA-F_]+|[0-9][0-9_.eE+-]*)$")


def read_text(path: str | Path) -> str:
    """The file's text: at most MAX_BYTES of UTF-8, or one ScenarioError."""
    name = str(path)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario: {exc.strerror}", file=name) from None
    if len(data) > MAX_BYTES:
        raise ScenarioError(f"cannot read scenario: larger than {MAX_BYTES >> 20} MiB",
                            file=name)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ScenarioError(f"cannot read scenario: not UTF-8 text (byte {exc.start})",
                            file=name, line=line) from None


def _error(message: str, path: str, mark: Any = None, key: tuple = ()) -> ScenarioError:
    return ScenarioError(message, file=path, line=mark.line + 1 if mark else None,
                         key=".".join(map(str, key)) or None)


class _Where:
    """The key path of the event being read, kept from the event stream: per open
    collection its kind, and the current key (mapping) or index (sequence)."""

    def __init__(self) -> None:
        self.stack: list[list] = []  # [is_mapping, key or index, expecting a key]

    def path(self) -> tuple:
        return tuple(level[1] for level in self.stack if level[1] is not None)

    def node(self) -> None:
        """A value (scalar, alias or a whole collection) was read at this level."""
        if not self.stack:
            return
        level = self.stack[-1]
        if level[0]:
            level[2] = not level[2]
        else:
            level[1] = 0 if level[1] is None else level[1] + 1

    def scalar(self, value: str) -> None:
        if self.stack and self.stack[-1][0] and self.stack[-1][2]:
            self.stack[-1][1] = value
        self.node()

    def opening(self, mapping: bool) -> None:
        if self.stack and not self.stack[-1][0]:
            self.node()  # the collection is the next item of a sequence
        self.stack.append([mapping, None, True])

    def closing(self) -> None:
        self.stack.pop()
        if self.stack and self.stack[-1][0]:
            self.node()


def _scan(text: str, path: str) -> None:
    """Refuse deep nesting, explicit tags and absurd numbers from the event stream
    (iterative, so a hostile depth cannot exhaust the stack first)."""
    where = _Where()
    for event in yaml.parse(text, Loader=LOADER):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            where.opening(isinstance(event, yaml.MappingStartEvent))
            if len(where.stack) > MAX_DEPTH:
                raise _error(f"nested deeper than {MAX_DEPTH} levels", path,
                             event.start_mark, where.path())
            if event.tag is not None and not event.implicit:
                raise _error(f"YAML tags are not allowed (found {event.tag})", path,
                             event.start_mark, where.path())
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            where.closing()
        elif isinstance(event, yaml.ScalarEvent):
            key = where.path()
            if event.tag is not None and event.implicit == (False, False):
                raise _error(f"YAML tags are not allowed (found {event.tag})", path,
                             event.start_mark, key)
            if (not event.style and len(event.value) >= MAX_NUMBER_CHARS
                    and _NUMBER.match(event.value)):
                raise _error(f"number too long ({len(event.value)} characters)", path,
                             event.start_mark, key)
            where.scalar(event.value)
        elif isinstance(event, yaml.AliasEvent):
            where.node()


def _expanded_size(node: yaml.Node, path: str) -> int:
    """Nodes after alias expansion; ScenarioError for a recursive alias, too many
    values, or nesting deeper than MAX_DEPTH once aliases are expanded (a chain of
    anchors nests without nesting in the text)."""
    seen: dict[int, tuple[int, int]] = {}  # id -> (expanded size, expanded depth)
    open_: set[int] = set()

    def measure(n: yaml.Node) -> tuple[int, int]:
        if id(n) in seen:
            return seen[id(n)]
        if id(n) in open_:
            raise _error("recursive YAML alias", path, n.start_mark)
        open_.add(id(n))
        children: list[yaml.Node] = []
        if isinstance(n, yaml.MappingNode):
            children = [child for pair in n.value for child in pair]
        elif isinstance(n, yaml.SequenceNode):
            children = list(n.value)
        measured = [measure(child) for child in children]
        size = 1 + sum(s for s, _ in measured)
        depth = 1 + max((d for _, d in measured), default=0)
        open_.discard(id(n))
        seen[id(n)] = (size, depth)
        if size > MAX_NODES:
            raise _error(f"aliases expand to more than {MAX_NODES:,} values", path,
                         n.start_mark)
        if depth > MAX_DEPTH + 1:
            raise _error(f"aliases nest deeper than {MAX_DEPTH} levels", path, n.start_mark)
        return size, depth

    return measure(node)[0]


def load(text: str, path: str) -> tuple[Any, dict[tuple, int]]:
    """The document, and the line of every key path (keys as YAML resolves them:
    ``1:`` is the integer 1)."""
    try:
        _scan(text, path)
        loader = LOADER(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, {}
            _expanded_size(node, path)
            lines: dict[tuple, int] = {}
            _record_lines(loader, node, (), lines, path)
            return loader.construct_document(node), lines
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _error(f"malformed YAML: {problem}", path, mark) from None


def _record_lines(loader: Any, node: yaml.Node, path: tuple, lines: dict[tuple, int],
                  file: str) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _error("a key must be a plain value", file, key_node.start_mark, path)
            key = loader.construct_object(key_node)
            if not isinstance(key, str):  # every key of a scenario is a name
                raise _error(f"a key must be a name, not {type(key).__name__} "
                             f"{key_node.value!r}", file, key_node.start_mark, path)
            child = path + (key,)
            if key in seen:  # PyYAML would silently keep the last one
                raise _error("duplicate key", file, key_node.start_mark, child)
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            _record_lines(loader, value_node, child, lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(loader, item, path + (index,), lines, file)
