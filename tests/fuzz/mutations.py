"""Mutations of real client payloads: what a buggy client, a proxy or an attacker makes of them.

Each mutation changes one place of a JSON document (a path of keys and indices): drops it,
gives it a wrong type, slips a NUL or a lone surrogate into it, makes it a huge number, an
edge-of-calendar time, a deep nest or an oversized string; or, on the text itself, repeats a
key. The document goes out as JSON text, with lone surrogates as `\\ud800` escapes, as a
client written in another language would send them.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

Path = tuple[str | int, ...]

ODD_VALUES: tuple[Any, ...] = (None, True, 0, -1, 1.5, "", "x", [], {}, [None], {"": None}, "null",
                               "true", "0")
HUGE_NUMBERS: tuple[Any, ...] = (2**63, -(2**63) - 1, 10**30, -(10**30), 1e308, -1e308, 5e-324,
                                 10**400, 2**64)
EDGE_TIMES: tuple[Any, ...] = ("9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1900-01-01T00:00:00Z",
                               "10000-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z",
                               "9999-12-31T23:59:59.999999+14:00", "0001-01-01T00:00:00-14:00",
                               "2026-01-01", "now", "", 253402300800, -62135596800, 1e20, None)
TIME_FIELDS = ("timestamp", "sentAt", "originalTimestamp")
STRANGE_TEXT = ("\x00", "a\x00b", "\ud800", "x\udfff", "\ud83d", "\U0001f600", "\u202e", "\ufeff",
                "\\u0000")
NEST_DEPTHS = (64, 256, 1_000, 5_000)
BIG_SIZES = (33_000, 600_000)


def paths_of(value: Any, prefix: Path = (), limit: int = 400) -> list[Path]:
    """Every place in the document (breadth first, at most `limit`), the root excluded."""
    out: list[Path] = []
    frontier: list[tuple[Path, Any]] = [(prefix, value)]
    while frontier and len(out) < limit:
        path, node = frontier.pop(0)
        children = (node.items() if isinstance(node, dict)
                    else enumerate(node) if isinstance(node, list) else ())
        for key, child in children:
            out.append((*path, key))
            frontier.append(((*path, key), child))
    return out


def _parent(document: Any, path: Path) -> Any:
    node = document
    for key in path[:-1]:
        node = node[key]
    return node


def _set(document: Any, path: Path, value: Any) -> None:
    _parent(document, path)[path[-1]] = value


NEST_MARKER = "<deep nest {}>"


def _nest_text(depth: int, as_list: bool) -> str:
    # Written as text: building the nest as objects would take the encoder past its own
    # recursion limit before the service ever saw it.
    return "[" * depth + "1" + "]" * depth if as_list else '{"n":' * depth + "1" + "}" * depth


@st.composite
def mutated(draw: st.DrawFn, document: Any, max_mutations: int = 3) -> bytes:
    """`document` with 1 to `max_mutations` mutations, as the bytes of a request body."""
    doc = copy.deepcopy(document)
    repeat_key: tuple[str, Any] | None = None
    nests: list[str] = []
    for _ in range(draw(st.integers(1, max_mutations))):
        places = paths_of(doc)
        if not places or not isinstance(doc, dict):
            break
        path = draw(st.sampled_from(places))
        kind = draw(st.sampled_from(("drop", "wrong_type", "strange_text", "strange_key", "huge_number",
                                     "edge_time", "deep_nest", "oversized", "repeat_key")))
        parent = _parent(doc, path)
        if kind == "drop":
            del parent[path[-1]]
        elif kind == "wrong_type":
            _set(doc, path, draw(st.sampled_from(ODD_VALUES)))
        elif kind == "strange_text":
            current = parent[path[-1]]
            text = current if isinstance(current, str) else "v"
            at = draw(st.integers(0, len(text)))
            _set(doc, path, text[:at] + draw(st.sampled_from(STRANGE_TEXT)) + text[at:])
        elif kind == "strange_key" and isinstance(parent, dict):
            parent[f"{path[-1]}{draw(st.sampled_from(STRANGE_TEXT))}"] = parent.pop(path[-1])
        elif kind == "huge_number":
            _set(doc, path, draw(st.sampled_from(HUGE_NUMBERS)))
        elif kind == "edge_time":
            where = draw(st.sampled_from(((*path[:-1], draw(st.sampled_from(TIME_FIELDS))), path)))
            if isinstance(_parent(doc, where), dict):
                _set(doc, where, draw(st.sampled_from(EDGE_TIMES)))
        elif kind == "deep_nest":
            _set(doc, path, NEST_MARKER.format(len(nests)))
            nests.append(_nest_text(draw(st.sampled_from(NEST_DEPTHS)), draw(st.booleans())))
        elif kind == "oversized":
            _set(doc, path, "x" * draw(st.sampled_from(BIG_SIZES)))
        elif kind == "repeat_key" and len(path) == 1 and isinstance(path[0], str):
            repeat_key = (path[0], draw(st.sampled_from(ODD_VALUES)))
    text = json.dumps(doc, ensure_ascii=True)
    for index, nest in enumerate(nests):
        text = text.replace(json.dumps(NEST_MARKER.format(index)), nest)
    if repeat_key is not None and text.startswith("{") and len(text) > 2:
        # The same key twice: JSON parsers keep one of them, which one is theirs to choose.
        text = "{" + json.dumps(repeat_key[0]) + ":" + json.dumps(repeat_key[1]) + "," + text[1:]
    return text.encode()
