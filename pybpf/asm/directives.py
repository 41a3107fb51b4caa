"""Assembler directives: ``.map`` (DESIGN.md section 3) and the few llvm-mc section directives.

``.map NAME TYPE key=K value=V max_entries=N [flags=F]`` declares a map; ``r1 = NAME ll`` then
loads it (``lddw`` with source PSEUDO_MAP_IDX and the map's index as immediate, the kernel's
fd_array convention). Directives llvm-mc emits in ``clang -S`` output that do not change the
code (``.text``, ``.globl``, ``.p2align``, ...) are accepted and ignored so such files assemble;
``.section NAME`` names the program's section. Anything else is refused.
"""

from __future__ import annotations

import re
from typing import Callable

from ..program import MapSpec
from .builder import MAP_TYPES, ProgramBuilder
from .lexer import IDENT, SourceLine, parse_int

_DIRECTIVE = re.compile(r"\s*(\.[A-Za-z_][\w]*)\b\s*(.*)")
_MAP_FIELDS = {"key": "key_size", "value": "value_size", "max_entries": "max_entries",
               "flags": "flags"}
_REQUIRED = ("key", "value", "max_entries")
_MAP_SYNTAX = ".map NAME TYPE key=K value=V max_entries=N [flags=F]"


def _map(builder: ProgramBuilder, line: SourceLine, args: str, pos: int) -> None:
    words = [(m.group(), m.start() + pos) for m in re.finditer(r"\S+", args)]
    if len(words) < 2:
        raise line.error(f"'.map' needs a name and a type: {_MAP_SYNTAX}", pos)
    (name, npos), (mtype, tpos) = words[0], words[1]
    if not IDENT.match(name):
        raise line.error(f"invalid map name '{name}'", npos)
    if mtype not in MAP_TYPES or mtype == "unspec":
        raise line.error(f"unknown map type '{mtype}' (one of: "
                         f"{', '.join(t for t in MAP_TYPES if t != 'unspec')})", tpos)
    values: dict[str, int] = {}
    for word, wpos in words[2:]:
        key, eq, val = word.partition("=")
        if not eq or key not in _MAP_FIELDS:
            raise line.error(f"unexpected '{word}' in .map (expected key=, value=, "
                             f"max_entries= or flags=)", wpos)
        if key in values:
            raise line.error(f"'{key}=' given twice", wpos)
        number = parse_int(line, val, wpos + len(key) + 1)
        if not 0 <= number <= 0xFFFF_FFFF:
            raise line.error(f"{key}={number} is out of range (0..4294967295)", wpos)
        values[key] = number
    missing = [k for k in _REQUIRED if k not in values]
    if missing:
        raise line.error(f"'.map {name}' lacks {', '.join(k + '=' for k in missing)}: "
                         f"{_MAP_SYNTAX}", pos)
    spec = MapSpec(name, mtype, **{_MAP_FIELDS[k]: v for k, v in values.items()})
    builder.define_map(spec, line, npos)


def _section(builder: ProgramBuilder, line: SourceLine, args: str, pos: int) -> None:
    name = args.split(",")[0].strip().strip('"')
    if not name:
        raise line.error("'.section' needs a name", pos)
    if builder.section is None:
        builder.section = name


def _ignore(builder: ProgramBuilder, line: SourceLine, args: str, pos: int) -> None:
    """Layout and symbol directives that do not change the instructions."""


DIRECTIVES: dict[str, Callable[[ProgramBuilder, SourceLine, str, int], None]] = {
    ".map": _map,
    ".section": _section,
    ".text": _ignore,
    ".globl": _ignore,
    ".global": _ignore,
    ".type": _ignore,
    ".size": _ignore,
    ".p2align": _ignore,
    ".align": _ignore,
    ".file": _ignore,
    ".addrsig": _ignore,
    ".addrsig_sym": _ignore,
}


def handle_directive(builder: ProgramBuilder, line: SourceLine) -> bool:
    """Run the directive on ``line`` if it is one; False for an instruction line."""
    m = _DIRECTIVE.match(line.text)
    if not m:
        return False
    handler = DIRECTIVES.get(m.group(1))
    if handler is None:
        raise line.error(f"unknown directive '{m.group(1)}' (known: "
                         f"{', '.join(sorted(DIRECTIVES))})", m.start(1))
    handler(builder, line, m.group(2), m.start(2))
    return True
