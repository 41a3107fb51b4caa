"""The syntax tree of bpftrace's language (0.17), as pybpf's parser builds it.

Every node records the line and column where it starts, so type errors and verifier
explanations can point at the script.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Node:
    line: int
    col: int


# --- expressions ---------------------------------------------------------------------------

@dataclass
class Integer(Node):
    value: int


@dataclass
class String(Node):
    value: str


@dataclass
class Builtin(Node):
    """pid, tid, comm, nsecs, args, arg0, retval, func, probe, ..."""
    name: str


@dataclass
class Variable(Node):
    """A scratch variable ``$name`` (or a positional parameter ``$1``)."""
    name: str


@dataclass
class Identifier(Node):
    """A C constant by name (``AF_INET``, ``SKB_DROP_REASON_NOT_SPECIFIED``): a macro of the
    script or of its ``#include``-d headers, or an enumerator of the kernel's BTF."""
    name: str


@dataclass
class Map(Node):
    """``@name`` or ``@name[k1, k2]``; ``keys`` is empty for a scalar map."""
    name: str
    keys: list["Expr"] = field(default_factory=list)


@dataclass
class Call(Node):
    name: str
    args: list["Expr"] = field(default_factory=list)


@dataclass
class Binary(Node):
    op: str
    left: "Expr"
    right: "Expr"


@dataclass
class Unary(Node):
    op: str
    operand: "Expr"


@dataclass
class Ternary(Node):
    cond: "Expr"
    then: "Expr"
    other: "Expr"


@dataclass
class FieldAccess(Node):
    """``args->filename`` or ``args.filename``."""
    expr: "Expr"
    field: str


@dataclass
class Index(Node):
    """``expr[n]`` on a non-map expression (array or pointer element)."""
    expr: "Expr"
    index: "Expr"


@dataclass
class Cast(Node):
    type_name: str
    expr: "Expr"


@dataclass
class SizeOf(Node):
    """``sizeof(uint32)``, ``sizeof(struct task_struct)`` or ``sizeof(expression)``."""
    type_name: str | None
    expr: "Expr | None"


@dataclass
class Tuple(Node):
    items: list["Expr"]


@dataclass
class IncDec(Node):
    """``@x++``, ``$i--``, ``++@x``."""
    op: str
    target: "Expr"
    prefix: bool


Expr = (Integer | String | Builtin | Identifier | Variable | Map | Call | Binary | Unary | Ternary
        | FieldAccess | Index | Cast | SizeOf | Tuple | IncDec)


# --- statements ----------------------------------------------------------------------------

@dataclass
class ExprStmt(Node):
    expr: Expr


@dataclass
class Assign(Node):
    """``@m[k] = v``, ``$x = v``, and compound forms (``op`` is "+=" etc. or "=")."""
    target: Map | Variable
    op: str
    value: Expr


@dataclass
class If(Node):
    cond: Expr
    then: list["Stmt"]
    other: list["Stmt"] = field(default_factory=list)


@dataclass
class Unroll(Node):
    count: int
    body: list["Stmt"]


@dataclass
class While(Node):
    cond: Expr
    body: list["Stmt"]


@dataclass
class Jump(Node):
    """``return``, ``break``, ``continue``."""
    kind: str


Stmt = ExprStmt | Assign | If | Unroll | While | Jump


# --- probes --------------------------------------------------------------------------------

@dataclass
class AttachPoint(Node):
    """One probe specification, e.g. ``tracepoint:syscalls:sys_enter_openat``.

    ``provider`` is normalised to its long name (``t`` -> ``tracepoint``); ``target`` and
    ``func`` follow bpftrace's meaning per provider (``uprobe:/bin/bash:readline`` has target
    /bin/bash and func readline; ``interval:s:1`` has unit s and freq 1).
    """
    provider: str
    target: str = ""
    func: str = ""
    unit: str = ""
    freq: int = 0
    raw: str = ""


@dataclass
class Probe(Node):
    attach_points: list[AttachPoint]
    predicate: Expr | None
    body: list[Stmt]


@dataclass
class Script(Node):
    probes: list[Probe]
    source: str = ""
    filename: str = "<script>"
    #: the preprocessor's: ``#define NAME VALUE`` lines and ``#include``-d headers (taken)
    macros: dict[str, str] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)
