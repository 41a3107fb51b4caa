"""Tracing programs: kprobe / uprobe (``struct pt_regs``), tracepoint, raw_tracepoint,
perf_event (``struct bpf_perf_event_data``), and the BTF-typed tracing and lsm programs (u64
arguments).

Their context is an event, not a packet: the saved registers of the probed function (x86-64
``struct pt_regs``, 21 u64), the raw tracepoint record (its 8 bytes of common fields first), the
u64 arguments of a raw tracepoint (BPF_PROG_TEST_RUN's ``ctx_in``, at most 12), or the perf
sample (pt_regs, sample_period, addr). The context is built from the bytes given (``--ctx-file``;
missing bytes read as zero) and is read-only, as ``kprobe_prog_is_valid_access`` and friends
in kernel/trace/bpf_trace.c make it.
"""

from __future__ import annotations

from .base import Context, Field, ProgType, check_ctx_size
from .helpers import helpers_of

#: x86-64 struct pt_regs, in order
PT_REGS = ("r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx",
           "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss")
PT_REGS_SIZE = 8 * len(PT_REGS)
#: the registers the x86-64 calling convention passes arguments in (PT_REGS_PARM1..6)
ARGUMENT_REGS = ("di", "si", "dx", "cx", "r8", "r9")
PERF_MAX_TRACE_SIZE = 8192
MAX_RAW_TP_ARGS = 12
#: types whose context is an array of u64 arguments
U64_ARGUMENTS = ("raw_tracepoint", "tracing", "lsm")


def _regs(prefix: str = "", narrow: bool = True) -> tuple[Field, ...]:
    return tuple(Field(prefix + name, 8 * i, 8, narrow_read=narrow)
                 for i, name in enumerate(PT_REGS))


class EventContext(Context):
    """A read-only event record as the context."""

    def __init__(self, prog_type: ProgType, memory, data: bytes, ctx_in: bytes | None):
        raw = check_ctx_size(prog_type, ctx_in, multiple=8 if prog_type.name in U64_ARGUMENTS
                             else 1)
        super().__init__(prog_type, memory, raw)
        self.region.writable = False
        self.packet = None

    def reset(self, data: bytes, ctx_in: bytes | None) -> bool:
        raw = check_ctx_size(self.prog_type, ctx_in, multiple=8 if self.prog_type.name in
                             U64_ARGUMENTS else 1)
        view = self.region.view
        view[: self.region.size] = bytes(self.region.size)
        view[: len(raw)] = raw
        return True

    def ctx_out(self) -> bytes | None:
        return None


def pt_regs(**values: int) -> bytes:
    """A ``struct pt_regs`` image with the named registers set (``di=1, ip=0x...``)."""
    out = bytearray(PT_REGS_SIZE)
    for name, value in values.items():
        i = PT_REGS.index(name)
        out[8 * i: 8 * i + 8] = (value & (1 << 64) - 1).to_bytes(8, "little")
    return bytes(out)


def _make(name: str, ctx_name: str, size: int, fields: tuple[Field, ...], raw: bool,
          helpers_from: str, raw_start: int = 0) -> ProgType:
    pt = ProgType(name, ctx_name, size, fields, None,  # type: ignore[arg-type]
                  helpers_of(helpers_from), {}, "0 filters the event out, 1 keeps it",
                  raw_ctx=raw, raw_start=raw_start)
    pt.make_context = lambda memory, data=b"", ctx=None: EventContext(pt, memory, data, ctx)
    return pt


PERF_EVENT_FIELDS = _regs("regs.", narrow=False) + (Field("sample_period", PT_REGS_SIZE, 8),
                                      Field("addr", PT_REGS_SIZE + 8, 8))

PROG_TYPES = {
    "kprobe": _make("kprobe", "struct pt_regs", PT_REGS_SIZE, _regs(), True, "kprobe"),
    "uprobe": _make("uprobe", "struct pt_regs", PT_REGS_SIZE, _regs(), True, "kprobe"),
    # the record's 8 bytes of common fields are not the program's (tp_prog_is_valid_access)
    "tracepoint": _make("tracepoint", "tracepoint record", PERF_MAX_TRACE_SIZE, (), True,
                        "tracepoint", raw_start=8),
    "raw_tracepoint": _make("raw_tracepoint", "raw tracepoint arguments (u64[])",
                            8 * MAX_RAW_TP_ARGS, (), True, "raw_tracepoint"),
    # BTF-typed programs (fentry/fexit/tp_btf/iter, lsm): the context is the u64 arguments
    "tracing": _make("tracing", "function arguments (u64[])", 8 * MAX_RAW_TP_ARGS, (), True,
                     "raw_tracepoint"),
    "lsm": _make("lsm", "hook arguments (u64[])", 8 * MAX_RAW_TP_ARGS, (), True,
                 "raw_tracepoint"),
    "perf_event": _make("perf_event", "struct bpf_perf_event_data", PT_REGS_SIZE + 16,
                        PERF_EVENT_FIELDS, False, "perf_event"),
}
