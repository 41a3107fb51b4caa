"""Loading and running programs in the kernel: maps patched in, the verifier log carried,
test_run's data/ctx/repeat, information like ``bpftool prog show``."""

from __future__ import annotations

import errno
import subprocess
import shutil
import json
import time

import pytest

from pybpf import isa, kernel
from pybpf.errors import KernelError, UsageError
from pybpf.program import MapSpec, Program

pytestmark = pytest.mark.kernel
I = isa.Instruction


def mov(dst, imm):
    return I(isa.ALU64 | isa.MOV | isa.K, dst, 0, 0, imm)


EXIT = I(isa.JMP | isa.EXIT)


def counter_program(kind="array") -> Program:
    """Adds 7 to element 0 of a map and returns 1 (the helper-and-atomics round trip)."""
    insns = [
        I(isa.ST | isa.MEM | isa.W, 10, 0, -4, 0),            # *(u32 *)(r10 - 4) = 0
        I(isa.ALU64 | isa.MOV | isa.X, 2, 10),                 # r2 = r10
        I(isa.ALU64 | isa.ADD | isa.K, 2, 0, 0, -4),           # r2 += -4
        I.lddw(1, 0, isa.PSEUDO_MAP_IDX),                      # r1 = counters ll
        I(isa.JMP | isa.CALL, 0, 0, 0, 1),                     # call bpf_map_lookup_elem
        I(isa.JMP | isa.JEQ | isa.K, 0, 0, 2, 0),              # if r0 == 0 goto +2
        mov(1, 7),
        I(isa.STX | isa.ATOMIC | isa.DW, 0, 1, 0, isa.ATOMIC_ADD),  # lock *(u64 *)(r0) += r1
        mov(0, 1), EXIT,
    ]
    return Program(insns, name="counter", maps=[MapSpec("counters", kind, 4, 8, 1)])


def test_a_program_returns_its_r0_through_test_run():
    result = kernel.test_run(Program([mov(0, 42), EXIT]), bytes(14))
    assert result.retval == 42 and result.data_out == bytes(14)


def test_repeat_runs_the_program_many_times_and_reports_a_duration():
    with kernel.load_program(counter_program()) as prog:
        result = prog.test_run(bytes(14), repeat=100)
        assert result.retval == 1
        assert prog.maps[0][0] == (700).to_bytes(8, "little")
        assert result.duration_ns >= 0


def test_maps_declared_by_the_program_are_created_patched_and_closed_with_it():
    prog = kernel.load_program(counter_program())
    counters = prog.map("counters")
    prog.test_run(bytes(14))
    assert counters[0] == (7).to_bytes(8, "little")
    info = prog.info()
    assert info.map_ids == [counters.id]
    prog.close()
    assert counters.closed and prog.closed


def test_a_map_given_by_the_caller_is_shared_and_stays_open():
    with kernel.KernelMap.create(MapSpec("shared", "array", 4, 8, 1)) as shared:
        for _ in range(2):
            with kernel.load_program(counter_program(), maps=[shared]) as prog:
                prog.test_run(bytes(14))
        assert shared[0] == (14).to_bytes(8, "little")


def test_the_wrong_number_of_given_maps_is_refused():
    with kernel.KernelMap.create(MapSpec("a", "array", 4, 8, 1)) as m:
        with pytest.raises(UsageError):
            kernel.load_program(Program([mov(0, 0), EXIT]), maps=[m])


def test_a_rejected_program_carries_the_full_verifier_log_and_its_reason():
    bad = Program([EXIT], name="noinit")               # r0 never written
    with pytest.raises(KernelError) as info:
        kernel.load_program(bad)
    exc = info.value
    assert exc.errno == errno.EACCES and exc.command == "BPF_PROG_LOAD"
    assert "R0 !read_ok" in exc.log and "R0 !read_ok" in str(exc)
    assert "noinit" in str(exc)


def test_the_verifier_log_is_kept_on_success_when_asked():
    with kernel.load_program(Program([mov(0, 0), EXIT]), log_level=2) as prog:
        assert "processed 2 insns" in prog.log


def test_test_run_on_too_little_data_explains_the_kernels_rule():
    with pytest.raises(KernelError) as info:
        kernel.test_run(Program([mov(0, 0), EXIT]), b"")
    assert info.value.errno == errno.EINVAL and "14 bytes" in str(info.value)


def test_xdp_test_run_returns_the_verdict_and_the_packet():
    packet = bytes(range(64))
    result = kernel.test_run(Program([mov(0, 2), EXIT], prog_type="xdp"), packet)
    assert result.retval == 2 and result.data_out == packet


def test_sched_cls_test_run_takes_and_returns_a_skb_context():
    ctx = bytearray(192)                                 # struct __sk_buff
    ctx[8:12] = (5).to_bytes(4, "little")                 # mark
    # r0 = *(u32 *)(r1 + 8)   (skb->mark)
    prog = Program([I(isa.LDX | isa.MEM | isa.W, 0, 1, 8), EXIT], prog_type="sched_cls")
    result = kernel.test_run(prog, bytes(64), ctx=bytes(ctx))
    assert result.retval == 5 and result.ctx_out is not None and len(result.ctx_out) == 192


def test_xlated_code_and_info_match_bpftool():
    bpftool = shutil.which("bpftool")
    with kernel.load_program(Program([mov(0, 3), EXIT], name="three")) as prog:
        info = prog.info()
        assert info.name == "three" and info.type == "socket_filter" and info.gpl_compatible
        assert prog.xlated() == isa.encode([mov(0, 3), EXIT])
        assert info.xlated_bytes == 16 and len(info.tag) == 16
        if bpftool:
            shown = json.loads(subprocess.run([bpftool, "-j", "prog", "show", "id", str(info.id)],
                                              capture_output=True, text=True).stdout)
            assert shown["tag"] == info.tag and shown["name"] == "three"


def test_the_program_appears_in_the_systems_program_ids_until_closed():
    from pybpf.kernel.prog import iter_prog_ids

    prog = kernel.load_program(Program([mov(0, 3), EXIT]))
    pid = prog.id
    assert pid in set(iter_prog_ids())
    prog.close()
    for _ in range(100):  # the kernel frees programs after an RCU grace period
        if pid not in set(iter_prog_ids()):
            break
        time.sleep(0.01)
    assert pid not in set(iter_prog_ids())
