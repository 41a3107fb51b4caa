"""Faults, the budget, the call depth limit and load-time refusals.

A fault is a :class:`pybpf.errors.VMError` carrying the pc (slot index) of the faulting
instruction and the faulting address -- on both execution paths, never a raw Python exception.
The call depth limit is checked against the kernel verifier's own limit (8 frames).
"""

from __future__ import annotations

import pytest

from pybpf import isa
from pybpf.errors import BudgetExceeded, HelperError, VMError
from pybpf.helpers import HELPER_NAMES, get_helper
from pybpf.program import Program
from pybpf.vm import Interpreter

I = isa.Instruction
EXIT = I(isa.JMP | isa.EXIT)
PATHS = pytest.mark.parametrize("stepping", [False, True], ids=["fast", "stepping"])


def mov(dst: int, imm: int) -> I:
    return I(isa.ALU64 | isa.MOV, dst, imm=imm)


def run(insns: list[I], data: bytes = b"", stepping: bool = False, **kw) -> int:
    return Interpreter(Program(insns), **kw, sandbox=True).run(data, stepping=stepping)


@PATHS
def test_a_load_from_an_unmapped_address_faults_with_pc_and_address(stepping):
    insns = [I.lddw(1, 0x1000), I(isa.LDX | isa.MEM | isa.DW, 0, 1, 8), EXIT]
    with pytest.raises(VMError) as info:
        run(insns, stepping=stepping)
    assert info.value.pc == 2          # the lddw takes slots 0 and 1
    assert info.value.address == 0x1008
    assert "0x1008" in str(info.value) and "pc 2" in str(info.value)


@PATHS
def test_a_load_running_past_the_end_of_the_input_faults(stepping):
    insns = [I(isa.LDX | isa.MEM | isa.W, 0, 1, 2), EXIT]
    assert run(insns, bytes([1, 2, 3, 4, 5, 6]), stepping) == 0x06050403
    with pytest.raises(VMError) as info:
        run(insns, bytes([1, 2, 3, 4, 5]), stepping)
    assert info.value.pc == 0
    assert "past the end" in info.value.message


@PATHS
def test_the_stack_frame_is_exactly_512_bytes_below_r10(stepping):
    ok = [I(isa.ST | isa.MEM | isa.DW, 10, 0, -512, 7),
          I(isa.LDX | isa.MEM | isa.DW, 0, 10, -512), EXIT]
    assert run(ok, stepping=stepping) == 7
    for off in (-520, -513, 0, -4):
        insns = [I(isa.LDX | isa.MEM | isa.DW, 0, 10, off), EXIT]
        with pytest.raises(VMError) as info:
            run(insns, stepping=stepping)
        assert info.value.pc == 0, off


@PATHS
def test_the_program_text_is_read_only(stepping):
    # r1 = address of the subprogram at slot 4 (a pseudo-func load), then write to it
    insns = [I(isa.LDDW, 1, isa.PSEUDO_FUNC, 0, 3, 0), I(isa.ST | isa.MEM | isa.B, 1, 0, 0, 1),
             EXIT, mov(0, 1), EXIT]
    with pytest.raises(VMError) as info:
        run(insns, stepping=stepping)
    assert info.value.pc == 2
    assert "read-only" in info.value.message


@PATHS
def test_an_atomic_on_an_unmapped_address_faults(stepping):
    insns = [mov(1, 64), I(isa.STX | isa.ATOMIC | isa.DW, 1, 0, 0, isa.ATOMIC_ADD), EXIT]
    with pytest.raises(VMError) as info:
        run(insns, stepping=stepping)
    assert (info.value.pc, info.value.address) == (1, 64)


@PATHS
def test_an_endless_loop_exhausts_the_budget(stepping):
    insns = [mov(0, 0), I(isa.ALU64 | isa.ADD, 0, imm=1), I(isa.JMP | isa.JA, off=-2), EXIT]
    with pytest.raises(BudgetExceeded) as info:
        run(insns, stepping=stepping, budget=1001)
    assert info.value.pc == 1          # instruction 1002 would be the add at pc 1
    assert "1001" in str(info.value)


@PATHS
def test_the_budget_counts_exactly_one_per_executed_instruction(stepping):
    insns = [mov(0, 1)] * 9 + [EXIT]
    assert run(insns, stepping=stepping, budget=10) == 1
    with pytest.raises(BudgetExceeded) as info:
        run(insns, stepping=stepping, budget=9)
    assert info.value.pc == 9


def test_the_default_budget_is_one_million_instructions():
    insns = [I(isa.JMP | isa.JA, off=-1)]
    vm = Interpreter(Program(insns), sandbox=True)
    assert vm.budget == 1_000_000
    with pytest.raises(BudgetExceeded):
        vm.run()
    assert vm.insn_count == 1_000_000 or vm.insn_count == 0  # (fast path hands over exactly)


def call_chain(frames: int) -> list[I]:
    """main calls f1 calls f2 ... f{frames-1}; the last returns 42: ``frames`` frames deep."""
    insns: list[I] = []
    for _ in range(frames - 1):
        insns += [I(isa.JMP | isa.CALL, 0, isa.CALL_LOCAL, 0, 1), EXIT]
    return insns + [mov(0, 42), EXIT]


@PATHS
def test_eight_frames_are_allowed_and_nine_are_not(stepping):
    assert run(call_chain(8), stepping=stepping) == 42
    with pytest.raises(VMError) as info:
        run(call_chain(9), stepping=stepping)
    assert "depth" in info.value.message
    assert info.value.pc == 14        # the call made from the eighth frame


@pytest.mark.kernel
def test_the_call_depth_limit_is_the_kernels():
    kernel = pytest.importorskip("pybpf.kernel")
    from pybpf.errors import KernelError

    assert kernel.test_run(Program(call_chain(8)), bytes(14)).retval == 42
    with pytest.raises(KernelError):
        kernel.test_run(Program(call_chain(9)), bytes(14))


@PATHS
def test_bpf_to_bpf_calls_pass_r1_to_r5_and_preserve_r6_to_r9(stepping):
    insns = [mov(1, 1), mov(2, 2), mov(3, 3), mov(4, 4), mov(5, 5), mov(6, 6), mov(9, 9),
             I(isa.JMP | isa.CALL, 0, isa.CALL_LOCAL, 0, 4),
             I(isa.ALU64 | isa.X | isa.ADD, 0, 6), I(isa.ALU64 | isa.X | isa.ADD, 0, 9), EXIT,
             # callee: r0 = r1 + r5 * 16, clobber r6 and r9, use its own stack frame
             mov(6, 100), mov(9, 100), I(isa.STX | isa.MEM | isa.DW, 10, 5, -8),
             I(isa.LDX | isa.MEM | isa.DW, 0, 10, -8), I(isa.ALU64 | isa.LSH, 0, imm=4),
             I(isa.ALU64 | isa.X | isa.ADD, 0, 1), EXIT]
    assert run(insns, stepping=stepping) == 1 + 5 * 16 + 6 + 9


@PATHS
def test_callx_calls_a_subprogram_by_its_address(stepping):
    insns = [I(isa.LDDW, 2, isa.PSEUDO_FUNC, 0, 5, 0), mov(1, 20), I(isa.CALLX, 2),
             I(isa.ALU64 | isa.ADD, 0, imm=1), EXIT,
             I(isa.ALU64 | isa.X | isa.MOV, 0, 1), I(isa.ALU64 | isa.MUL, 0, imm=2), EXIT]
    assert run(insns, stepping=stepping) == 41


@PATHS
def test_callx_to_garbage_faults(stepping):
    insns = [I.lddw(2, 0xDEAD_0000_0000), I(isa.CALLX, 2), EXIT]
    with pytest.raises(VMError) as info:
        run(insns, stepping=stepping)
    assert info.value.pc == 2


@PATHS
def test_running_off_the_end_of_the_program_faults(stepping):
    with pytest.raises(VMError) as info:
        run([mov(0, 1)], stepping=stepping)
    assert info.value.pc == 1
    assert "left the program" in info.value.message


def test_an_unknown_helper_is_refused_at_load_time_by_id():
    with pytest.raises(HelperError) as info:
        Interpreter(Program([I(isa.JMP | isa.CALL, imm=0x7FFF), EXIT]), sandbox=True)
    assert info.value.pc == 0
    assert "32767" in str(info.value)


def test_an_unimplemented_kernel_helper_is_refused_by_name():
    missing = next(hid for hid in sorted(HELPER_NAMES) if hid and get_helper(hid) is None)
    with pytest.raises(HelperError) as info:
        Interpreter(Program([mov(0, 0), I(isa.JMP | isa.CALL, imm=missing), EXIT]), sandbox=True)
    assert HELPER_NAMES[missing] in str(info.value)
    assert info.value.pc == 1


def test_a_kfunc_call_is_refused_at_load_time():
    with pytest.raises(HelperError):
        Interpreter(Program([I(isa.JMP | isa.CALL, 0, isa.CALL_KFUNC, 0, 1234), EXIT]), sandbox=True)


def test_writing_the_frame_pointer_is_refused_like_the_verifier_does():
    with pytest.raises(VMError) as info:
        Interpreter(Program([mov(0, 0), mov(10, 0), EXIT]), sandbox=True)
    assert info.value.pc == 1


def test_an_empty_program_is_refused():
    with pytest.raises(VMError):
        Interpreter(Program([]), sandbox=True)


@PATHS
def test_a_helper_fault_reports_the_calling_pc(stepping):
    # get_current_comm(buf = 0x10, size = 16): the buffer is not writable memory
    insns = [mov(0, 0), mov(1, 0x10), mov(2, 16), I(isa.JMP | isa.CALL, imm=16), EXIT]
    with pytest.raises(VMError) as info:
        run(insns, stepping=stepping)
    assert info.value.pc == 3
    assert info.value.address == 0x10


@PATHS
def test_a_python_helper_error_becomes_a_helper_error(stepping):
    def broken(env, *args):
        raise ZeroDivisionError("oops")

    insns = [I(isa.JMP | isa.CALL, imm=5), EXIT]
    with pytest.raises(HelperError) as info:
        run(insns, stepping=stepping, helpers={5: broken})
    assert "ZeroDivisionError" in str(info.value) and info.value.pc == 0


@PATHS
def test_unwind_returning_zero_stops_the_program_with_zero(stepping):
    from pybpf.cli.plugin import unwind

    insns = [mov(1, 0), I(isa.JMP | isa.CALL, imm=5), mov(0, 2), EXIT]
    assert run(insns, stepping=stepping, helpers={5: unwind}) == 0
    insns[0] = mov(1, 3)
    assert run(insns, stepping=stepping, helpers={5: unwind}) == 2


@PATHS
def test_a_packet_load_outside_the_data_ends_the_program_with_zero(stepping):
    insns = [mov(0, 9), I(isa.LD | isa.ABS | isa.W, imm=2), mov(0, 9), EXIT]
    assert run(insns, bytes(6), stepping) == 9
    assert run(insns, bytes(5), stepping) == 0


@PATHS
def test_a_smaller_input_on_the_next_run_faults_where_the_larger_one_did_not(stepping):
    # the fast path caches the last region per access width; a removed region must not linger
    vm = Interpreter(Program([I(isa.LDX | isa.MEM | isa.DW, 0, 1, 8), EXIT]), sandbox=True)
    for _ in range(3):
        assert vm.run(bytes(range(16)), stepping=stepping) == int.from_bytes(
            bytes(range(8, 16)), "little")
        with pytest.raises(VMError):
            vm.run(bytes(4), stepping=stepping)


@PATHS
def test_a_fault_names_the_source_line_of_the_faulting_instruction(stepping):
    asm = pytest.importorskip("pybpf.asm")
    program = asm.assemble("r1 = 8\nr2 = 1\nr0 = *(u64 *)(r1 + 0)\nexit\n", filename="f.s")
    if not program.lines:
        pytest.skip("the assembler records no source lines")
    with pytest.raises(VMError) as info:
        Interpreter(program, sandbox=True).run(stepping=stepping)
    assert info.value.pc == 2
    assert info.value.source == program.lines[2].strip()
    assert "*(u64 *)(r1 + 0)" in str(info.value)
