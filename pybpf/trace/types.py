"""The data a compiled script carries from compiler to runtime: value types, map layouts,
printf formats, the event protocol.

Kept apart from :mod:`.codegen` so the runtime (and a cached compilation) never has to
import LLVM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

# event kinds sent through the ring buffer (re-exported for the compiler)
from .events import EV_CLEAR, EV_EXIT, EV_PRINT, EV_PRINTF, EV_TIME, EV_ZERO  # noqa: F401

if TYPE_CHECKING:  # the runtime reads cached metadata without the syntax tree
    from . import ast

STRLEN = 64
COMM_LEN = 16
RINGBUF_SIZE = 1 << 20


@dataclass(frozen=True)
class SType:
    """A value's type: ``int`` (64-bit, signed or not), ``str`` (N bytes), ``buf`` (N raw
    bytes) or ``none``. ``display`` names how user space prints it: ``ksym``/``kstack`` are
    ints (an address, a stack id), ``usym``/``ustack`` are 16-byte bufs (value and pid);
    ``frames`` limits a stack's depth (``kstack(5)``)."""

    kind: str
    size: int = 8
    signed: bool = True
    display: str = ""
    frames: int = 0
    #: kernel memory (:mod:`.kerneltypes`): the BTF id an address points at; ``rec``: the
    #: value is the address of a struct/union member itself (embedded, not pointed to)
    btf: int = 0
    rec: bool = False
    #: bytes of the C integer an ``int`` came from (a member, a field, a cast): held in 64
    #: bits, but ``bswap`` swaps this many
    width: int = 8

    def __str__(self) -> str:
        if self.btf:
            from .kerneltypes import type_name
            return type_name(self.btf) + ("" if self.rec else " *")
        if self.display:
            return self.display
        return {"int": "int64" if self.signed else "uint64",
                "str": f"string[{self.size}]"}.get(self.kind, self.kind)


INT = SType("int")
UINT = SType("int", signed=False)
NONE = SType("none", 0)

AGGREGATIONS = {"count", "sum", "avg", "min", "max", "stats", "hist", "lhist"}

#: symbol and stack types (printed by user space, see ``output``)
_STACK_TYPES = {
    "kstack": SType("int", 8, False, "kstack"), "ustack": SType("buf", 16, False, "ustack"),
    "ksym": SType("int", 8, False, "ksym"), "usym": SType("buf", 16, False, "usym"),
    # ntop(): the address family (u64) and 16 address bytes
    "inet": SType("buf", 24, False, "inet"),
    # the uid, printed as its user's name
    "username": SType("int", 8, False, "username"),
    # strftime(): the format's id (u64) and the nsecs value
    "strftime": SType("buf", 16, False, "strftime"),
}
MAX_STACK_FRAMES = 127  # the kernel's default perf_event_max_stack, as bpftrace uses
BPF_F_USER_STACK = 1 << 8


def _frames_arg(call) -> int:
    """``kstack(N)``: the frame limit, 0 (all) when not given."""
    from . import ast  # only the compiler asks; a cached script's metadata needs no AST

    if isinstance(call, ast.Call) and call.args and isinstance(call.args[0], ast.Integer):
        return call.args[0].value
    return 0


@dataclass
class MapInfo:
    """A script map: how its keys and values are laid out in the BPF hash map."""

    name: str
    index: int
    key_types: list[SType]
    value: str                  # "int", "str", or an aggregation name
    value_type: SType = INT
    lhist: tuple[int, int, int] | None = None  # min, max, step

    @property
    def map_type(self) -> str:
        """The BPF map type, as bpftrace 0.17 chooses it: aggregations live in per-CPU maps
        (plain read-modify-write in the program, merged over CPUs in user space -- see
        :func:`pybpf.trace.output.merge_percpu`); a ``count()`` without keys in a one-slot
        per-CPU array (so it always exists: printed as 0 before any event, zeroed rather than
        deleted by ``clear``/``delete``); everything else in a hash map."""
        if self.value == "count" and not self.key_types:
            return "percpu_array"
        if self.value in AGGREGATIONS:
            return "percpu_hash"
        return "hash"

    @property
    def is_array(self) -> bool:
        return self.map_type == "percpu_array"

    @property
    def key_size(self) -> int:
        if self.is_array:
            return 4  # the array's index, always 0
        size = sum(t.size for t in self.key_types) or 8
        if self.value in ("hist", "lhist"):
            size += 8  # bucket index appended to the user's key
        return size

    @property
    def value_size(self) -> int:
        if self.value in ("avg", "stats"):
            return 16  # count, total
        if self.value in ("min", "max"):
            return 16  # value, 1 once this CPU has one (merged over the CPUs that have)
        if self.value == "str":
            return self.value_type.size
        return 8


@dataclass
class PrintfFormat:
    id: int
    fmt: str
    arg_types: list[SType]
    kind: int = EV_PRINTF


@dataclass
class CompileUnit:
    """What the compiler hands the runtime: the LLVM module and the metadata to decode events."""

    module: object  # the llvmlite ir.Module (None once the unit is cached)
    maps: dict[str, MapInfo]
    formats: list[PrintfFormat]
    functions: list[tuple[str, "ast.Probe", "ast.AttachPoint", str]]  # name, probe, ap, section
    uses_elapsed: bool = False
    ringbuf_index: int = 0
    start_index: int = 1
    stack_index: int = 2
    uses_stacks: bool = False
    retained: list = None  # (DISubprogram ref, parameter DILocalVariable ref) pairs

    def ir_text(self) -> str:
        """The module's LLVM IR, with each subprogram's ``retainedNodes`` filled in (the
        subprogram and its parameter refer to each other, which llvmlite cannot build)."""
        text = str(self.module)
        for sp, var in self.retained or ():
            text = re.sub(rf"^({re.escape(sp)} = distinct !DISubprogram\(.*)\)$",
                          lambda m: f"{m.group(1)}, retainedNodes: !{{{var}}})", text,
                          count=1, flags=re.M)
        return text
