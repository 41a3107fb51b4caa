"""Event contexts. raw_tracepoint runs in the kernel's BPF_PROG_TEST_RUN with its u64 arguments
as the context, so pybpf's run is compared with it; kprobe, tracepoint and perf_event cannot be
test-run by the kernel, so for them the context pybpf builds is checked against the layout the
kernel headers give (x86-64 struct pt_regs as clang lays it out)."""

from __future__ import annotations

import ctypes
import struct

import pytest
from hypothesis import given, settings, strategies as st

from pybpf import kernel
from pybpf.asm import assemble
from pybpf.errors import UsageError
from pybpf.progtypes.tracing import ARGUMENT_REGS, PT_REGS, PT_REGS_SIZE, pt_regs
from pybpf.vm import Interpreter


def sum_of_args(count: int) -> str:
    lines = ["r0 = 0"]
    for i in range(count):
        lines += [f"r2 = *(u64 *)(r1 + {8 * i})", f"r2 *= {i + 3}", "r0 ^= r2"]
    return "\n".join(lines + ["exit"])


def raw_tp_test_run(program, ctx: bytes) -> int:
    """BPF_PROG_TEST_RUN of a raw tracepoint program: only ctx_in may be given."""
    from pybpf.kernel import syscall, uapi
    from pybpf.kernel.attrs import TestRunAttr

    with kernel.load_program(program, prog_type="raw_tracepoint") as kp:
        cin = ctypes.create_string_buffer(ctx, max(len(ctx), 1))
        attr = TestRunAttr(prog_fd=kp.fd, ctx_size_in=len(ctx), ctx_in=ctypes.addressof(cin))
        syscall.bpf(uapi.Cmd.PROG_TEST_RUN, attr)
        return attr.retval


@pytest.mark.kernel
@settings(max_examples=12, deadline=None)
@given(st.lists(st.integers(0, (1 << 64) - 1), min_size=1, max_size=12))
def test_raw_tracepoint_arguments_read_like_the_kernels(args):
    program = assemble(sum_of_args(len(args)))
    ctx = struct.pack(f"<{len(args)}Q", *args)
    ours = Interpreter(program, prog_type="raw_tracepoint").run(ctx=ctx)
    assert ours & 0xFFFFFFFF == raw_tp_test_run(program, ctx)


def test_raw_tracepoint_context_must_be_whole_u64_arguments():
    vm = Interpreter(assemble(sum_of_args(1)), prog_type="raw_tracepoint")
    with pytest.raises(UsageError, match="multiple of 8"):
        vm.run(ctx=b"\1\2\3")
    with pytest.raises(UsageError, match="at most 96"):
        vm.run(ctx=bytes(104))


class PtRegs(ctypes.Structure):
    """x86-64 ``struct pt_regs`` (arch/x86/include/uapi/asm/ptrace.h)."""

    _fields_ = [(name, ctypes.c_ulong) for name in PT_REGS]


def test_pt_regs_has_the_x86_64_layout():
    assert ctypes.sizeof(PtRegs) == PT_REGS_SIZE == 168
    regs = PtRegs.from_buffer_copy(pt_regs(di=1, si=2, dx=3, cx=4, r8=5, r9=6, ip=0xFFFF1234,
                                           sp=0x7FFC0000))
    assert [getattr(regs, r) for r in ARGUMENT_REGS] == [1, 2, 3, 4, 5, 6]
    assert (regs.ip, regs.sp) == (0xFFFF1234, 0x7FFC0000)


def test_a_kprobe_reads_its_arguments_from_the_registers():
    source = f"""
        r0 = *(u64 *)(r1 + {PT_REGS.index('di') * 8})
        r2 = *(u64 *)(r1 + {PT_REGS.index('si') * 8})
        r0 += r2
        exit
    """
    vm = Interpreter(assemble(source), prog_type="kprobe")
    assert vm.run(ctx=pt_regs(di=40, si=2)) == 42


def test_a_perf_event_reads_its_sample_period_after_the_registers():
    vm = Interpreter(assemble("r0 = *(u64 *)(r1 + 168)\nexit"), prog_type="perf_event")
    assert vm.run(ctx=bytes(168) + struct.pack("<QQ", 4000, 0)) == 4000
