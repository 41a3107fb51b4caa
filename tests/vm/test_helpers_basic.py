"""Basic helpers, checked against what the operating system reports for this process.

The helpers run in userspace, so "the current task" is this Python process; the reference for
each value is the OS (os.getpid, /proc, clock_gettime), not pybpf.
"""

from __future__ import annotations

import errno
import os
import threading
import time

from pybpf import isa
from pybpf.helpers import HELPER_IDS, get_helper
from pybpf.program import Program
from pybpf.vm import Interpreter

I = isa.Instruction
EXIT = I(isa.JMP | isa.EXIT)
M64 = (1 << 64) - 1


def call(name: str) -> I:
    return I(isa.JMP | isa.CALL, imm=HELPER_IDS[name])


def run(insns, data=b""):
    vm = Interpreter(Program(insns))
    return vm.run(data), vm


def test_basic_helpers_are_registered_with_kernel_prototypes():
    for name in ("ktime_get_ns", "ktime_get_boot_ns", "get_prandom_u32", "get_smp_processor_id",
                 "trace_printk", "get_current_pid_tgid", "get_current_uid_gid",
                 "get_current_comm", "probe_read", "probe_read_str", "probe_read_user",
                 "probe_read_kernel", "probe_read_user_str", "probe_read_kernel_str"):
        found = get_helper(HELPER_IDS[name])
        assert found is not None and found.impl is not None, name
    assert get_helper(HELPER_IDS["probe_read_kernel"]).proto.args == (
        "ptr_to_uninit_mem", "const_size_or_zero", "anything")


def test_pid_tgid_is_this_process_and_thread():
    r0, _ = run([call("get_current_pid_tgid"), EXIT])
    assert r0 >> 32 == os.getpid()
    assert r0 & 0xFFFFFFFF == threading.get_native_id()


def test_uid_gid_is_this_process():
    r0, _ = run([call("get_current_uid_gid"), EXIT])
    assert (r0 & 0xFFFFFFFF, r0 >> 32) == (os.getuid(), os.getgid())


def test_comm_is_the_task_name_from_proc():
    insns = [I(isa.ALU64 | isa.X | isa.MOV, 1, 10), I(isa.ALU64 | isa.ADD, 1, imm=-16),
             I(isa.ALU64 | isa.MOV, 2, imm=16), call("get_current_comm"),
             I(isa.LDX | isa.MEM | isa.DW, 0, 10, -16), EXIT]
    r0, _ = run(insns)
    with open(f"/proc/self/task/{threading.get_native_id()}/comm", "rb") as f:
        comm = f.read().strip()[:15]
    assert r0.to_bytes(8, "little") == (comm + bytes(8))[:8]


def test_ktime_is_the_monotonic_clock_and_boot_time_the_boottime_clock():
    before = time.monotonic_ns()
    r0, _ = run([call("ktime_get_ns"), EXIT])
    assert before <= r0 <= time.monotonic_ns()
    before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    r0, _ = run([call("ktime_get_boot_ns"), EXIT])
    assert before <= r0 <= time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def test_prandom_gives_varying_32_bit_values():
    values = {run([call("get_prandom_u32"), EXIT])[0] for _ in range(8)}
    assert len(values) > 1 and all(v < 1 << 32 for v in values)


def test_smp_processor_id_is_a_cpu_of_this_machine():
    r0, _ = run([call("get_smp_processor_id"), EXIT])
    assert 0 <= r0 < os.cpu_count()


def _probe(name: str, size: int, src_reg_setup: list[I]) -> list[I]:
    # dst = r10 - 16, size, src in r3; r0 = result; then r0 = (r0 << 32) | low half of dst
    return src_reg_setup + [
        I(isa.ALU64 | isa.X | isa.MOV, 1, 10), I(isa.ALU64 | isa.ADD, 1, imm=-16),
        I(isa.ALU64 | isa.MOV, 2, imm=size), call(name),
        I(isa.ALU64 | isa.LSH, 0, imm=32), I(isa.LDX | isa.MEM | isa.W, 6, 10, -16),
        I(isa.ALU64 | isa.X | isa.OR, 0, 6), EXIT]


def test_probe_read_copies_from_program_memory():
    insns = _probe("probe_read_kernel", 4, [I(isa.ALU64 | isa.X | isa.MOV, 3, 1)])
    r0, _ = run(insns, b"\x01\x02\x03\x04\x05")
    assert r0 == 0x04030201


def test_probe_read_of_an_unmapped_address_fails_with_efault_and_zeroes_the_buffer():
    insns = [I(isa.ST | isa.MEM | isa.DW, 10, 0, -16, -1)] + _probe(
        "probe_read", 4, [I.lddw(3, 0x10)])
    r0, _ = run(insns)
    assert r0 >> 32 == (-errno.EFAULT) & 0xFFFFFFFF
    assert r0 & 0xFFFFFFFF == 0


def test_probe_read_str_stops_at_the_nul_and_counts_it():
    insns = _probe("probe_read_kernel_str", 8, [I(isa.ALU64 | isa.X | isa.MOV, 3, 1)])
    r0, _ = run(insns, b"ab\0cdefgh")
    assert r0 >> 32 == 3
    assert r0 & 0xFFFFFFFF == int.from_bytes(b"ab\0\0", "little")


def test_probe_read_str_truncates_to_size_with_a_nul():
    insns = _probe("probe_read_user_str", 3, [I(isa.ALU64 | isa.X | isa.MOV, 3, 1)])
    r0, _ = run(insns, b"abcdef")
    assert r0 >> 32 == 3
    assert (r0 & 0xFFFFFFFF).to_bytes(4, "little")[:3] == b"ab\0"


def test_trace_printk_formats_like_printf_and_lands_in_the_trace_pipe():
    fmt = b"x=%d h=%x s=%s\0"
    data = fmt + b"hi\0"
    insns = [I(isa.ALU64 | isa.X | isa.MOV, 6, 1),
             I(isa.ALU64 | isa.X | isa.MOV, 1, 6), I(isa.ALU64 | isa.MOV, 2, imm=len(fmt)),
             I(isa.ALU64 | isa.MOV, 3, imm=-5), I(isa.ALU64 | isa.MOV, 4, imm=-5),
             I(isa.ALU64 | isa.X | isa.MOV, 5, 6), I(isa.ALU64 | isa.ADD, 5, imm=len(fmt)),
             call("trace_printk"), EXIT]
    # %d and %x without a length modifier are 32-bit, as in the kernel's bpf_trace_printk
    expected = "x=%d h=%x s=%s" % (-5, (-5) & 0xFFFFFFFF, "hi")
    r0, vm = run(insns, data)
    assert vm.trace_pipe == [expected]
    assert r0 == len(expected)
