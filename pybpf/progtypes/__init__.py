"""Program types: the context a program receives, the helpers it may call, what it returns.

One module per family -- :mod:`.skb` (socket_filter, sched_cls, sched_act, cgroup_skb),
:mod:`.xdp`, :mod:`.tracing` (kprobe, uprobe, tracepoint, raw_tracepoint, perf_event) -- each
giving :class:`~.base.ProgType` rows: the UAPI context layout, how a context is built from a
packet or an event the way BPF_PROG_TEST_RUN builds it, allowed helpers and verdict names.

Engines call :func:`prepare` once at load (checks helper calls and context accesses, rewrites
pointer-field loads, :mod:`.rewrite`) and ``prog_type.make_context(memory, data, ctx)`` per run.
The interpreter does both when given a type::

    vm = Interpreter(program, prog_type="xdp")
    r0 = vm.run(frame, ctx=None)          # r1 = the xdp_md built around a copy of frame
    vm.data_out(), vm.ctx_out()           # what BPF_PROG_TEST_RUN would hand back

:mod:`.packets` runs a program over a pcap (``pybpf run --pcap``). Every behaviour here is
compared with the running kernel in tests/progtypes (field values, access rules, allowed
helpers, bounds of the XDP helpers, clang fixtures, tail calls).
"""

from __future__ import annotations

from .. import isa
from ..errors import HelperError, UsageError
from ..helpers import HELPER_NAMES, get_helper
from ..program import Program
from . import skb, tracing, xdp
from .base import Context, Field, ProgType
from .rewrite import rewrite_context_accesses

PROG_TYPES: dict[str, ProgType] = {**skb.PROG_TYPES, **xdp.PROG_TYPES, **tracing.PROG_TYPES}

__all__ = ["PROG_TYPES", "Context", "Field", "ProgType", "get_prog_type", "prepare",
           "check_helpers"]


def get_prog_type(name: str | ProgType) -> ProgType:
    if isinstance(name, ProgType):
        return name
    try:
        return PROG_TYPES[name]
    except KeyError:
        raise UsageError(f"unknown program type '{name}' (pybpf runs: "
                         f"{', '.join(sorted(PROG_TYPES))})") from None


def check_helpers(program: Program, prog_type: ProgType) -> None:
    """Refuse, naming the helper, a call the type may not make or the engine cannot make."""
    pc = 0
    for insn in program.insns:
        if insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_HELPER:
            name = HELPER_NAMES.get(insn.imm)
            if name is None:
                raise HelperError(f"call to unknown helper id {insn.imm}", pc=pc)
            short = name[4:] if name.startswith("bpf_") else name
            if not prog_type.allows_helper(short):
                raise HelperError(f"helper bpf_{short} (id {insn.imm}) may not be called by "
                                  f"{prog_type.name} programs", pc=pc)
            found = get_helper(insn.imm)
            if found is None or found.impl is None:
                raise HelperError(f"helper bpf_{short} (id {insn.imm}) is not implemented by "
                                  "pybpf", pc=pc)
        pc += insn.slots


def prepare(program: Program, prog_type: str | ProgType) -> Program:
    """The program as an engine should run it for ``prog_type``: helper calls checked, context
    accesses checked and rewritten (a new Program; the original is left alone)."""
    pt = get_prog_type(prog_type)
    check_helpers(program, pt)
    prepared = rewrite_context_accesses(program, pt)
    prepared.prog_type = pt.name
    return prepared
