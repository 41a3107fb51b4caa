"""Maps as the interpreter sees them: 64-bit loads of map pointers and values, helpers, and the
same live map shared with Python. Results are compared with the kernel running the same
program on a kernel map."""

from __future__ import annotations

import pytest

from pybpf import isa
from pybpf.vm import Interpreter

asm = pytest.importorskip("pybpf.asm")
pytest.importorskip("pybpf.maps")

I = isa.Instruction


def test_a_map_load_gives_the_live_maps_handle():
    program = asm.assemble(".map vals array key=4 value=16 max_entries=4\n"
                           "r0 = vals ll\nexit\n")
    vm = Interpreter(program)
    assert vm.run() == vm.maps[0].handle
    assert vm.run(stepping=True) == vm.maps[0].handle


# the kernel offers direct value access on single-element arrays (global data) only
DIRECT_VALUE = """
.map vals array key=4 value=16 max_entries=1
r1 = vals ll
r2 = 0x1122334455667788 ll
*(u64 *)(r1 + 8) = r2
r0 = *(u32 *)(r1 + 12)
exit
"""


def _with_direct_value_load(program):
    """Turn ``r1 = vals ll`` into ``r1 = &vals[0] ll`` (PSEUDO_MAP_IDX_VALUE, offset 0)."""
    first = program.insns[0]
    program.insns[0] = I(isa.LDDW, first.dst, isa.PSEUDO_MAP_IDX_VALUE, 0, first.imm, 0)
    return program


@pytest.mark.parametrize("stepping", [False, True])
def test_a_direct_value_load_points_into_the_maps_first_value(stepping):
    program = _with_direct_value_load(asm.assemble(DIRECT_VALUE))
    vm = Interpreter(program)
    assert vm.run(stepping=stepping) == 0x11223344
    assert bytes(vm.maps[0].lookup((0).to_bytes(4, "little")))[8:] == \
        (0x1122334455667788).to_bytes(8, "little")


@pytest.mark.kernel
def test_a_direct_value_load_matches_the_kernel():
    kernel = pytest.importorskip("pybpf.kernel")
    program = _with_direct_value_load(asm.assemble(DIRECT_VALUE))
    with kernel.load_program(program) as kp:
        k_r0 = kp.test_run(bytes(14)).retval
        k_value = bytes(kp.maps[0].lookup((0).to_bytes(4, "little")))
    vm = Interpreter(_with_direct_value_load(asm.assemble(DIRECT_VALUE)))
    assert vm.run() == k_r0
    assert bytes(vm.maps[0].lookup((0).to_bytes(4, "little"))) == k_value


COUNTER = """
.map counters hash key=4 value=8 max_entries=8
    r6 = 3
    *(u32 *)(r10 - 4) = r6
    r1 = counters ll
    r2 = r10
    r2 += -4
    call bpf_map_lookup_elem
    if r0 != 0 goto found
    r1 = 40
    *(u64 *)(r10 - 16) = r1
    r1 = counters ll
    r2 = r10
    r2 += -4
    r3 = r10
    r3 += -16
    r4 = 0
    call bpf_map_update_elem
    r0 = 100
    exit
found:
    r1 = 2
    lock *(u64 *)(r0 + 0) += r1
    r0 = *(u64 *)(r0 + 0)
    exit
"""


@pytest.mark.kernel
def test_map_helpers_give_the_kernels_results_run_after_run():
    kernel = pytest.importorskip("pybpf.kernel")
    key = (3).to_bytes(4, "little")
    vm = Interpreter(asm.assemble(COUNTER))
    with kernel.load_program(asm.assemble(COUNTER)) as kp:
        for _ in range(4):
            assert vm.run(bytes(14)) == kp.test_run(bytes(14)).retval
        assert bytes(vm.maps[0].lookup(key)) == bytes(kp.maps[0].lookup(key))


def test_python_and_the_program_share_the_live_map():
    key = (3).to_bytes(4, "little")
    vm = Interpreter(asm.assemble(COUNTER))
    vm.maps[0].update(key, (1000).to_bytes(8, "little"))
    assert vm.run() == 1002
    assert vm.run(stepping=True) == 1004
    assert bytes(vm.maps[0].lookup(key)) == (1004).to_bytes(8, "little")


TAIL_CALL_FROM_SUBPROGRAM = """
.map jumps prog_array key=4 value=4 max_entries=2
    r6 = r1
    call sub
    r0 += 1000
    exit
sub:
    r1 = r6
    r2 = jumps ll
    r3 = 0
    call bpf_tail_call
    r0 = 5
    exit
"""


@pytest.mark.parametrize("stepping", [False, True])
def test_a_tail_call_from_a_subprogram_returns_to_its_caller_on_both_paths(stepping):
    vm = Interpreter(asm.assemble(TAIL_CALL_FROM_SUBPROGRAM), sandbox=True)
    vm.maps[0][0] = asm.assemble("r0 = 42\nexit\n")
    assert vm.run(bytes(14), stepping=stepping) == 1042
    del vm.maps[0][0]                 # a failed tail call returns to the subprogram
    assert vm.run(bytes(14), stepping=stepping) == 1005
