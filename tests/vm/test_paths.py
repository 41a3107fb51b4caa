"""The translated fast path and the plain stepping path agree on every program.

No verifier stands in front of the interpreter, so the programs here are deliberately
unverified: jumps go backwards as well as forwards (loops that only the budget stops), memory
accesses may leave their region, calls may recurse past the depth limit, budgets are tiny. The
two paths must produce the same r0, or the same error at the same pc and address, and leave
the input data in the same state. (The kernel comparison of the semantics themselves is in
``test_semantics_kernel.py`` and ``tests/test_differential_kernel.py``.)
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf import isa
from pybpf.errors import VMError
from pybpf.memory import GUARD_BYTES
from pybpf.program import Program
from pybpf.vm import Interpreter
from tests.strategies import alu_insn

I = isa.Instruction
regs09 = st.integers(0, 9)
s32 = st.one_of(st.sampled_from([0, 1, -1, 8, -8, 0x7FFFFFFF, -0x80000000]),
                st.integers(-(1 << 31), (1 << 31) - 1))
SIZES = [isa.B, isa.H, isa.W, isa.DW]


@st.composite
def memory_op(draw) -> I:
    base = draw(st.sampled_from([1, 1, 10, 10, 10, 2, 3]))   # data pointer, stack, scalars
    off = draw(st.integers(-520, 40)) if base == 10 else draw(st.integers(-4, 40))
    size = draw(st.sampled_from(SIZES))
    kind = draw(st.sampled_from(["ldx", "ldsx", "st", "stx", "atomic"]))
    if kind == "ldx":
        return I(isa.LDX | isa.MEM | size, draw(regs09), base, off)
    if kind == "ldsx" and size != isa.DW:
        return I(isa.LDX | isa.MEMSX | size, draw(regs09), base, off)
    if kind == "st":
        return I(isa.ST | isa.MEM | size, base, 0, off, draw(s32))
    if kind == "atomic" and size in (isa.W, isa.DW):
        return I(isa.STX | isa.ATOMIC | size, base, draw(regs09), off,
                 draw(st.sampled_from(sorted(isa.ATOMIC_OPS))))
    return I(isa.STX | isa.MEM | size, base, draw(regs09), off)


@st.composite
def packet_op(draw) -> I:
    size = draw(st.sampled_from([isa.B, isa.H, isa.W]))
    if draw(st.booleans()):
        return I(isa.LD | isa.ABS | size, imm=draw(st.integers(-2, 40)))
    return I(isa.LD | isa.IND | size, src=draw(regs09), imm=draw(st.integers(-2, 40)))


#: a jump step: (opcode, dst, src, imm, target step index)
@st.composite
def jump_step(draw) -> tuple:
    kind = draw(st.sampled_from(["cond", "cond", "ja", "gotol"]))
    target = draw(st.integers(0, 63))
    if kind == "ja":
        return (isa.JMP | isa.JA, 0, 0, 0, target)
    if kind == "gotol":
        return (isa.JMP32 | isa.JA, 0, 0, 0, target)
    cls = draw(st.sampled_from([isa.JMP, isa.JMP32]))
    op = draw(st.sampled_from([isa.JEQ, isa.JGT, isa.JGE, isa.JSET, isa.JNE, isa.JSGT,
                               isa.JSGE, isa.JLT, isa.JLE, isa.JSLT, isa.JSLE]))
    src_kind = draw(st.sampled_from([isa.K, isa.X]))
    return (cls | op | src_kind, draw(regs09), draw(regs09) if src_kind == isa.X else 0,
            draw(s32) if src_kind == isa.K else 0, target)


@st.composite
def body(draw, max_size: int = 24) -> list:
    small = st.one_of(alu_insn(), alu_insn(), memory_op(), memory_op(), packet_op(),
                      jump_step(), st.just("call"), st.just("callx"), st.just("helper"),
                      st.just("exit"), st.builds(lambda r, v: I.lddw(r, v), regs09,
                                                 st.integers(0, isa.U64)))
    return draw(st.lists(small, min_size=1, max_size=max_size))


def assemble(main: list, sub: list) -> Program:
    """Lay out main + exit, then the subprogram + exit; resolve targets and calls."""
    steps = list(main) + ["exit"]
    sub_steps = list(sub) + ["exit"]

    def sizes(items):
        return [3 if s == "callx" else 2 if isinstance(s, I) and s.opcode == isa.LDDW else 1
                for s in items]

    main_sizes, sub_sizes = sizes(steps), sizes(sub_steps)
    main_slots = [sum(main_sizes[:i]) for i in range(len(steps))]
    sub_base = sum(main_sizes)
    sub_slots = [sub_base + sum(sub_sizes[:i]) for i in range(len(sub_steps))]
    insns: list[I] = []

    def emit(items, slots):
        for index, step in enumerate(items):
            pc = slots[index]
            if step == "exit":
                insns.append(I(isa.JMP | isa.EXIT))
            elif step == "call":
                insns.append(I(isa.JMP | isa.CALL, 0, isa.CALL_LOCAL, 0, sub_base - pc - 1))
            elif step == "callx":      # r9 = address of the subprogram; callx r9
                insns.append(I(isa.LDDW, 9, isa.PSEUDO_FUNC, 0, sub_base - pc - 1, 0))
                insns.append(I(isa.CALLX, 9))
            elif step == "helper":     # get_prandom_u32 is not deterministic: use uid/gid
                insns.append(I(isa.JMP | isa.CALL, 0, 0, 0, 15))
            elif isinstance(step, tuple):
                opcode, dst, src, imm, target = step
                dest = slots[target % len(items)]
                offset = dest - pc - 1
                if opcode == isa.JMP32 | isa.JA:
                    insns.append(I(opcode, 0, 0, 0, offset))
                else:
                    insns.append(I(opcode, dst, src, offset, imm))
            else:
                insns.append(step)

    emit(steps, main_slots)
    emit(sub_steps, sub_slots)
    return Program(insns)


def _relative(vm: Interpreter, value):
    """Addresses differ between two interpreters: name them by region and offset."""
    if value is None:
        return None
    # allocated regions are surrounded by guard bytes, so these windows never overlap
    for region in vm.memory:
        if region.address - GUARD_BYTES <= value <= region.end + GUARD_BYTES:
            return (region.name, value - region.address)
    return value


def outcome(vm: Interpreter, data: bytes, stepping: bool):
    try:
        result = ("ok", _relative(vm, vm.run(data, stepping=stepping)))
    except VMError as exc:
        result = (type(exc).__name__, exc.pc, _relative(vm, exc.address))
    return result, vm.data_region.bytes(), vm.stacks[0].bytes()


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(main=body(), sub=body(max_size=8), data=st.binary(max_size=24),
       budget=st.integers(1, 400))
def test_fast_path_and_stepping_path_agree_on_unverified_programs(main, sub, data, budget):
    # one interpreter, so that pointer values (which programs may do arithmetic on) are equal
    vm = Interpreter(assemble(main, sub), budget=budget, sandbox=True)
    fast = outcome(vm, data, stepping=False)
    slow = outcome(vm, data, stepping=True)
    assert fast == slow


def test_translated_loop_counts_every_instruction_like_the_stepper():
    # r0 = 0; r1 = 1000; loop: r0 += r1; r1 -= 1; if r1 != 0 goto loop; exit
    program = Program([I(isa.ALU64 | isa.MOV, 0, imm=0), I(isa.ALU64 | isa.MOV, 1, imm=1000),
                       I(isa.ALU64 | isa.X | isa.ADD, 0, 1), I(isa.ALU64 | isa.SUB, 1, imm=1),
                       I(isa.JMP | isa.JNE, 1, off=-3), I(isa.JMP | isa.EXIT)])
    counts = []
    for stepping in (False, True):
        vm = Interpreter(program)
        assert vm.run(stepping=stepping) == sum(range(1001))
        counts.append(vm.insn_count)
    assert counts == [3003, 3003]
