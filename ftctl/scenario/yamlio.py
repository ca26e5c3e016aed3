"""Safe YAML loading that keeps the line and column of every node for error messages."""

from __future__ import annotations

import difflib
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ftctl.errors import ScenarioError, raise_all

# The C loader is several times faster on the big matrix files; both are "safe".
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

PathItem = str | int


def format_path(path: tuple[PathItem, ...] | list[PathItem]) -> str:
    """``("load", "clients")`` → ``load.clients``; ``("failures", 0, "at")`` → ``failures[0].at``."""
    out = ""
    for item in path:
        if isinstance(item, int):
            out += f"[{item}]"
        else:
            out += f".{item}" if out else str(item)
    return out


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` when a close choice exists, else ``""``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass
class Document:
    """A parsed YAML document: plain data plus the node tree for locating errors."""

    file: str
    data: Any
    node: yaml.Node | None

    def locate(self, path: tuple[PathItem, ...] | list[PathItem], *, key: bool = False):
        """(line, column), 1-based, of the node at ``path`` (or of its key with ``key``).

        Walks as deep as the path exists; a missing tail points at its deepest parent.
        """
        node = self.node
        if node is None:
            return 1, 1
        mark = node.start_mark
        for i, item in enumerate(path):
            last = i == len(path) - 1
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if k.value == str(item):
                        mark = k.start_mark if (last and key) else v.start_mark
                        node = v
                        break
                else:
                    break
            elif isinstance(node, yaml.SequenceNode) and isinstance(item, int):
                if 0 <= item < len(node.value):
                    node = node.value[item]
                    mark = node.start_mark
                else:
                    break
            else:
                break
        return mark.line + 1, mark.column + 1

    def error(
        self, path: tuple[PathItem, ...] | list[PathItem], message: str, *, key: bool = False
    ) -> ScenarioError:
        """A ScenarioError pointing at ``path`` in this document."""
        line, col = self.locate(path, key=key)
        return ScenarioError(
            message, file=self.file, line=line, column=col, field=format_path(path) or None
        )


_FLOAT_TAG = "tag:yaml.org,2002:float"


def _finite(text: str) -> bool:
    """Whether a YAML float scalar is a finite number (``.nan``, ``.inf``, ``1e999`` are not)."""
    try:
        return math.isfinite(float(text.replace("_", "")))
    except ValueError:
        return not text.strip().lower().lstrip("+-").startswith((".nan", ".inf"))


def _check_nodes(doc_file: str, node: yaml.Node) -> None:
    """Refuse duplicate keys and non-finite numbers, all at once.

    YAML silently keeps the last of duplicate keys, a typo-prone trap; NaN and infinity pass
    every ``minimum``/``maximum`` comparison and then poison rates and durations.
    """
    errors: list[ScenarioError] = []
    stack: list[tuple[yaml.Node, tuple]] = [(node, ())]
    visited: set[int] = set()  # an alias is the same node object: walk it once
    while stack:
        n, path = stack.pop()
        if id(n) in visited:
            continue
        visited.add(id(n))
        if isinstance(n, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in seen:
                        errors.append(
                            _node_error(doc_file, k, (*path, k.value), f"duplicate key '{k.value}'")
                        )
                    seen.add(k.value)
                stack.append((v, (*path, k.value if isinstance(k, yaml.ScalarNode) else "?")))
        elif isinstance(n, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(n.value))
        elif n.tag == _FLOAT_TAG and not _finite(n.value):
            errors.append(_node_error(doc_file, n, path, f"{n.value!r} is not a finite number"))
    raise_all(errors)


def _node_error(doc_file: str, node: yaml.Node, path: tuple, message: str) -> ScenarioError:
    return ScenarioError(
        message,
        file=doc_file,
        line=node.start_mark.line + 1,
        column=node.start_mark.column + 1,
        field=format_path(path) or None,
    )


# Bounds on what a YAML document may expand to. A scenario is a few hundred nodes; these
# limits sit far above any real document and far below what would hang or crash.
MAX_DEPTH = 100  # libyaml's composer recurses in C: deep nesting would overflow its stack
MAX_EXPANDED_NODES = 200_000  # aliases repeat whole subtrees: a "billion laughs" bomb
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024

_OPEN_EVENTS = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSE_EVENTS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _check_bounds(text: str, file: str) -> None:
    """Refuse too-deep nesting and alias bombs from the event stream, before composing.

    The event parser keeps its own stack (no recursion), and the walk stops at the first
    bound crossed, so a hostile document costs little. Syntax errors are left to the loader.
    """
    # Per open collection: how many nodes it holds once every alias is expanded.
    sizes: list[int] = [0]
    anchored: dict[str, int] = {}
    anchors_open: list[str | None] = []
    first_alias = None
    total = 0  # nodes seen so far, every alias counted at its anchor's expanded size
    events = yaml.parse(text, Loader=_Loader)
    try:
        for event in events:
            if isinstance(event, _OPEN_EVENTS):
                if len(sizes) > MAX_DEPTH:
                    mark = event.start_mark
                    raise ScenarioError(
                        f"nesting deeper than {MAX_DEPTH} levels",
                        file=file,
                        line=mark.line + 1,
                        column=mark.column + 1,
                    )
                sizes.append(1)
                total += 1
                anchors_open.append(event.anchor)
            elif isinstance(event, _CLOSE_EVENTS):
                size = sizes.pop()
                anchor = anchors_open.pop()
                if anchor is not None:
                    anchored[anchor] = size
                sizes[-1] += size
            elif isinstance(event, yaml.ScalarEvent):
                if event.anchor is not None:
                    anchored[event.anchor] = 1
                sizes[-1] += 1
                total += 1
            elif isinstance(event, yaml.AliasEvent):
                first_alias = first_alias or event.start_mark
                expanded = anchored.get(event.anchor, 1)
                sizes[-1] += expanded
                total += expanded
            if total > MAX_EXPANDED_NODES:
                mark = first_alias or event.start_mark
                raise ScenarioError(
                    f"document expands to more than {MAX_EXPANDED_NODES:,} nodes "
                    "(aliases repeating large anchors?)",
                    file=file,
                    line=mark.line + 1,
                    column=mark.column + 1,
                )
    except yaml.YAMLError:
        return  # the loader reports syntax errors with their position
    finally:
        events.close()


def parse_text(text: str, file: str) -> Document:
    """Parse one YAML document safely; syntax errors become ScenarioError with line/column."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise ScenarioError(
            f"document larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB", file=file
        )
    _check_bounds(text, file)
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        except yaml.constructor.ConstructorError as exc:
            mark = exc.problem_mark or exc.context_mark
            tag = ""
            if exc.problem and "tag" in exc.problem:
                tag = exc.problem.split("tag", 1)[1].strip(" :'")
                tag = tag.replace("tag:yaml.org,2002:", "!!")
            msg = f"refused YAML tag {tag}: only plain data is allowed" if tag else str(exc)
            raise ScenarioError(
                msg,
                file=file,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
            ) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            what = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
            raise ScenarioError(
                f"YAML syntax error: {what}",
                file=file,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
            ) from None
        except yaml.YAMLError as exc:
            raise ScenarioError(f"YAML error: {exc}", file=file) from None
    finally:
        loader.dispose()
    if node is not None:
        _check_nodes(file, node)
    return Document(file=file, data=data, node=node)


def display_path(path: Path) -> str:
    """The path as the user should see it: relative to the working directory when inside it."""
    try:
        # abspath, not resolve: keep symlinked names (scenario_files/failures.yaml) as given.
        return str(Path(os.path.abspath(path)).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _read_regular_file(path: Path) -> str:
    """The file's text; FIFOs, devices and oversized files are refused without blocking."""
    # O_NONBLOCK: opening a FIFO with no writer must not hang; fstat then tells what it is.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(path)
        if not stat.S_ISREG(st.st_mode):
            raise ScenarioError("not a regular file (a FIFO or device?), expected a YAML file",
                                file=display_path(path))  # fmt: skip
        if st.st_size > MAX_DOCUMENT_BYTES:
            raise ScenarioError(
                f"file larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB",
                file=display_path(path),
            )
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1
            data = fh.read(MAX_DOCUMENT_BYTES + 1)
    finally:
        if fd >= 0:
            os.close(fd)
    return data.decode("utf-8")


def read_document(path: Path) -> Document:
    """Read and parse ``path``; unreadable, empty or non-mapping files are ScenarioErrors."""
    file = display_path(path)
    try:
        text = _read_regular_file(path)
    except FileNotFoundError:
        raise ScenarioError("no such file", file=file) from None
    except IsADirectoryError:
        raise ScenarioError("is a directory, expected a YAML file", file=file) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"not UTF-8 text ({exc.reason})", file=file) from None
    except OSError as exc:
        raise ScenarioError(f"cannot read: {exc.strerror}", file=file) from None
    doc = parse_text(text, file)
    if doc.data is None:
        raise ScenarioError("empty document", file=file, line=1, column=1)
    if not isinstance(doc.data, dict):
        raise ScenarioError(
            f"expected a mapping with apiVersion and kind, got {type(doc.data).__name__}",
            file=file,
            line=1,
            column=1,
        )
    return doc
