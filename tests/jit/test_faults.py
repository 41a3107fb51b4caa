"""Faults in JIT-compiled code are the interpreter's exceptions, never a crash.

Each program runs under the interpreter and the JIT (checked mode) on the same memory; the
error class, message, pc and address must match. Division by zero and shifts by huge counts
are not faults at all (RFC 9669 / Linux), so native code must not trap on them either.
"""

from __future__ import annotations

import pytest

from pybpf.asm import assemble
from pybpf.errors import BudgetExceeded, VMError
from pybpf.jit import JITProgram


def both(source: str, data: bytes = b"", **kw):
    jit = JITProgram(assemble(source), **kw, sandbox=True)
    results = []
    for engine in (jit.vm, jit):
        try:
            results.append(("ok", engine.run(data)))
        except VMError as exc:
            results.append((type(exc), exc.message, exc.pc, exc.address))
    return results


@pytest.mark.parametrize("source", [
    "r0 = *(u64 *)(r1 + 12)\nexit",              # past the end of the input data
    "r0 = *(u8 *)(r1 - 1)\nexit",                # just before it
    "r2 = 0\nr0 = *(u32 *)(r2 + 0)\nexit",       # null
    "r2 = -8\nr0 = *(u64 *)(r2 + 0)\nexit",      # the top of the address space
    "*(u64 *)(r1 + 10) = 7\nr0 = 0\nexit",       # a store straddling the end
    "r2 = r10\nr2 += 8\nr0 = *(u64 *)(r2 + 0)\nexit",   # above the frame
    "r2 = r10\nr2 += -520\n*(u64 *)(r2 + 0) = 1\nexit",  # below the frame
    "r0 = 1\nlock *(u64 *)(r1 + 12) += r0\nexit",         # atomic straddling the end
])
def test_an_out_of_bounds_access_raises_the_interpreters_vmerror(source):
    interp, jit = both(source, bytes(16))
    assert interp[0] is VMError and jit == interp


def test_a_store_to_read_only_memory_is_refused_like_the_interpreter_does():
    # the address of a subprogram points into the read-only copy of the bytecode
    source = """
        r1 = func ll
        *(u64 *)(r1 + 0) = 0
        r0 = 0
        exit
    func:
        r0 = 1
        exit
    """
    prog = assemble(source)
    from pybpf import isa
    insns = list(prog.insns)
    insns[0] = isa.Instruction(isa.LDDW, 1, isa.PSEUDO_FUNC, 0, 3, 0)
    prog.insns = insns
    jit = JITProgram(prog, sandbox=True)
    errors = []
    for engine in (jit.vm, jit):
        with pytest.raises(VMError) as info:
            engine.run()
        errors.append((info.value.message, info.value.pc, info.value.address))
    assert errors[0] == errors[1] and "read-only" in errors[0][0]


def test_an_endless_loop_exhausts_the_budget():
    jit = JITProgram(assemble("r0 = 0\nloop:\nr0 += 1\ngoto loop"), budget=10_000, sandbox=True)
    with pytest.raises(BudgetExceeded):
        jit.run()
    with pytest.raises(BudgetExceeded):
        jit.vm.run()


def test_a_program_within_its_budget_is_not_stopped():
    # 1 + 3 * 100 + 2 instructions: exactly the budget
    src = "r0 = 0\nr1 = 100\nloop:\nr0 += 1\nr1 -= 1\nif r1 != 0 goto loop\nexit"
    count = 2 + 3 * 100 + 1
    assert JITProgram(assemble(src), budget=count, sandbox=True).run() == 100
    with pytest.raises(BudgetExceeded):
        JITProgram(assemble(src), budget=count - 1, sandbox=True).run()
    with pytest.raises(BudgetExceeded):
        JITProgram(assemble(src), budget=count - 1, sandbox=True).vm.run()


def test_unbounded_recursion_stops_at_the_call_depth_limit():
    src = "r0 = 0\ncall f\nexit\nf:\ncall f\nexit"
    interp, jit = both(src)
    assert interp[0] is VMError and "depth" in interp[1]
    assert jit == interp


@pytest.mark.parametrize("source, expected", [
    ("r0 = 7\nr1 = 0\nr0 /= r1\nexit", 0),
    ("r0 = 7\nr1 = 0\nr0 %= r1\nexit", 7),
    ("r0 = 7\nr1 = 0\nr0 s/= r1\nexit", 0),
    ("r0 = -0x80000000\nr0 <<= 32\nr1 = -1\nr0 s/= r1\nr0 >>= 32\nexit", 0x80000000),
    ("r0 = -0x80000000\nr0 <<= 32\nr1 = -1\nr0 s%= r1\nexit", 0),
    ("w0 = -0x80000000\nw1 = -1\nw0 s/= w1\nexit", 0x80000000),
    ("r0 = 1\nr1 = 65\nr0 <<= r1\nexit", 2),
    ("w0 = 1\nw1 = 33\nw0 <<= w1\nexit", 2),
])
def test_division_and_shift_corner_cases_do_not_trap(source, expected):
    jit = JITProgram(assemble(source), sandbox=True)
    assert jit.run() == jit.vm.run() == expected
    assert JITProgram(assemble(source), checked=False).run() == expected


def test_falling_off_the_end_of_the_program_is_an_error():
    from pybpf import isa
    from pybpf.program import Program

    prog = Program([isa.Instruction(isa.ALU64 | isa.MOV | isa.K, 0, 0, 0, 1)])
    jit = JITProgram(prog, sandbox=True)
    with pytest.raises(VMError) as a:
        jit.vm.run()
    with pytest.raises(VMError) as b:
        jit.run()
    assert (a.value.message, a.value.pc) == (b.value.message, b.value.pc)


def test_legacy_packet_loads_outside_the_data_end_the_program_with_zero():
    src = "r6 = r1\nr0 = *(u32 *)skb[2]\nr0 = *(u32 *)skb[100]\nr0 = 5\nexit"
    jit = JITProgram(assemble(src), sandbox=True)
    data = bytes(range(16))
    assert jit.run(data) == jit.vm.run(data) == 0
    src = "r6 = r1\nr0 = *(u32 *)skb[2]\nexit"
    assert JITProgram(assemble(src), sandbox=True).run(data) == 0x02030405


def test_callx_calls_a_subprogram_a_helper_id_or_fails_like_the_interpreter():
    from pybpf import isa
    from pybpf.program import Program

    I = isa.Instruction
    func = Program([I(isa.ALU64 | isa.MOV | isa.K, 1, 0, 0, 37),
                    I(isa.LDDW, 8, isa.PSEUDO_FUNC, 0, 4, 0),   # slots 1-2: the function at 6
                    I(isa.CALLX, 8),
                    I(isa.ALU64 | isa.ADD | isa.K, 0, 0, 0, 100),
                    I(isa.JMP | isa.EXIT),
                    I(isa.ALU64 | isa.MOV | isa.X, 0, 1),
                    I(isa.ALU64 | isa.ADD | isa.K, 0, 0, 0, 5),
                    I(isa.JMP | isa.EXIT)])
    helper = Program([I(isa.ALU64 | isa.MOV | isa.K, 7, 0, 0, 15),   # get_current_uid_gid
                      I(isa.CALLX, 7), I(isa.JMP | isa.EXIT)])
    bad = Program([I(isa.LDDW, 7, 0, 0, 0, 1), I(isa.CALLX, 7), I(isa.JMP | isa.EXIT)])
    for prog in (func, helper):
        jit = JITProgram(prog, sandbox=True)
        assert jit.run() == jit.vm.run()
    assert JITProgram(func, sandbox=True).run() == 142
    jit = JITProgram(bad, sandbox=True)
    with pytest.raises(VMError) as a:
        jit.vm.run()
    with pytest.raises(VMError) as b:
        jit.run()
    assert (a.value.message, a.value.pc) == (b.value.message, b.value.pc)
