"""Hypothesis strategies producing valid eBPF programs: programs the kernel verifier accepts.

Used by the differential tests (the interpreter, the JIT and the kernel must agree on every
generated program). The generator follows the verifier's rules so that a rejection is a bug,
not noise:

* every register r0-r9 is initialised first (``R? !read_ok`` otherwise) and a 64-byte stack
  area is initialised before any load from it (the VM would read zeros, the kernel garbage);
* memory is only the stack, addressed from r10 with offsets aligned to the access width (the
  verifier enforces aligned stack access even where the CPU does not care);
* shift immediates are in range (0-31 for 32-bit, 0-63 for 64-bit) and division/modulo
  immediates are non-zero -- the verifier refuses those outright. Register operands may be
  anything: division by a zero *register* and shifts by large *register* values are run;
* jumps only go forward and land on an instruction, so every program terminates;
* byte swaps, sign-extending moves and loads, and atomics use the encodings of cpu v4.

A program is built from a :class:`Sketch`: a list of steps whose jumps name their target as an
index into the step list (``len(steps)`` is the epilogue), so the same body can be closed by
different epilogues (``exit``, or ``r0 >>= 32; exit`` to observe r0's high half through
interfaces that return 32 bits).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from pybpf import isa
from pybpf.program import Program

I = isa.Instruction
STACK_BYTES = 64          # r10-64 .. r10-1 are initialised and used
WORK_REGS = list(range(10))  # r0-r9; r10 is the read-only frame pointer

#: values that make arithmetic interesting (overflow, sign, zero, all-ones)
EDGE_VALUES = [0, 1, 2, 7, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF,
               0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF,
               0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_8000_0000,
               0xFFFF_FFFF_FFFF_FFFE, 63, 64, 31, 32]

ALU_OPS = [isa.ADD, isa.SUB, isa.MUL, isa.DIV, isa.OR, isa.AND, isa.LSH, isa.RSH, isa.MOD,
           isa.XOR, isa.MOV, isa.ARSH]
JMP_OPS = [isa.JEQ, isa.JGT, isa.JGE, isa.JSET, isa.JNE, isa.JSGT, isa.JSGE, isa.JLT, isa.JLE,
           isa.JSLT, isa.JSLE]
ATOMIC_OPS = sorted(isa.ATOMIC_OPS)
SIZES = [isa.B, isa.H, isa.W, isa.DW]


@dataclass(frozen=True)
class Jump:
    """A forward jump whose target is a step index (resolved to a slot offset at build time)."""

    opcode: int
    dst: int = 0
    src: int = 0
    imm: int = 0
    target: int = 0


@dataclass(frozen=True)
class Call:
    """A bpf-to-bpf call of subprogram ``number`` (resolved to a slot offset at build time)."""

    number: int


Step = I | Jump | Call


@dataclass
class Sketch:
    """A program body with symbolic jump targets (and the subprograms it calls)."""

    steps: list[Step]
    subprograms: list["Sketch"] = field(default_factory=list)

    def _resolve(self, base: int, sub_starts: list[int]) -> list[I]:
        slots = []
        pc = base
        for step in self.steps:
            slots.append(pc)
            pc += 2 if isinstance(step, I) and step.opcode == isa.LDDW else 1
        slots.append(pc)
        insns: list[I] = []
        for index, step in enumerate(self.steps):
            if isinstance(step, Jump):
                offset = slots[step.target] - slots[index] - 1
                if step.opcode == isa.JMP32 | isa.JA:
                    insns.append(I(step.opcode, 0, 0, 0, offset))
                else:
                    insns.append(I(step.opcode, step.dst, step.src, offset, step.imm))
            elif isinstance(step, Call):
                insns.append(I(isa.JMP | isa.CALL, 0, isa.CALL_LOCAL, 0,
                               sub_starts[step.number] - slots[index] - 1))
            else:
                insns.append(step)
        return insns

    def build(self, epilogue: list[I] | None = None, name: str = "generated") -> Program:
        """Close the body with ``epilogue`` (default ``exit``), append the subprograms (each
        ending in ``exit``) and resolve jump and call offsets."""
        epilogue = list(epilogue or [I(isa.JMP | isa.EXIT)])
        exit_ = I(isa.JMP | isa.EXIT)

        def size(sketch: "Sketch") -> int:
            return sum(2 if isinstance(s, I) and s.opcode == isa.LDDW else 1
                       for s in sketch.steps)

        sub_starts = []
        pc = size(self) + sum(i.slots for i in epilogue)
        for sub in self.subprograms:
            sub_starts.append(pc)
            pc += size(sub) + 1
        insns = self._resolve(0, sub_starts) + epilogue
        for start, sub in zip(sub_starts, self.subprograms):
            insns += sub._resolve(start, sub_starts) + [exit_]
        return Program(insns, name=name, prog_type="socket_filter")

    def with_high_half(self) -> Program:
        """The same program returning r0 >> 32 (the high half of r0 through a 32-bit retval)."""
        return self.build([I(isa.ALU64 | isa.RSH | isa.K, 0, 0, 0, 32), I(isa.JMP | isa.EXIT)])


# --- building blocks ------------------------------------------------------------------------

u64s = st.one_of(st.sampled_from(EDGE_VALUES), st.integers(0, isa.U64))
s32s = st.one_of(st.sampled_from([0, 1, -1, 2, -2, 0x7FFF_FFFF, -0x8000_0000, 31, 32, 63, 64,
                                  0xFF, 0xFFFF]),
                 st.integers(-(1 << 31), (1 << 31) - 1))
regs = st.sampled_from(WORK_REGS)


@st.composite
def init_steps(draw, first_reg: int = 0) -> list[Step]:
    """Give r<first_reg>-r9 values (64-bit loads or sign-extended 32-bit moves) and fill the
    stack."""
    steps: list[Step] = []
    for reg in WORK_REGS[first_reg:]:
        if draw(st.booleans()):
            steps.append(I.lddw(reg, draw(u64s)))
        else:
            steps.append(I(isa.ALU64 | isa.MOV | isa.K, reg, 0, 0, draw(s32s)))
    for off in range(-STACK_BYTES, 0, 8):
        if draw(st.booleans()):
            steps.append(I(isa.STX | isa.MEM | isa.DW, 10, draw(regs), off, 0))
        else:
            steps.append(I(isa.ST | isa.MEM | isa.DW, 10, 0, off, draw(s32s)))
    return steps


@st.composite
def alu_insn(draw) -> I:
    cls = draw(st.sampled_from([isa.ALU, isa.ALU64]))
    bits = 32 if cls == isa.ALU else 64
    dst = draw(regs)
    kind = draw(st.sampled_from(["op", "op", "op", "op", "neg", "end", "movsx", "signed"]))
    if kind == "neg":
        return I(cls | isa.NEG, dst)
    if kind == "end":
        width = draw(st.sampled_from([16, 32, 64]))
        if cls == isa.ALU64:
            return I(isa.ALU64 | isa.END | isa.K, dst, 0, 0, width)          # bswap
        return I(isa.ALU | isa.END | draw(st.sampled_from([isa.K, isa.X])), dst, 0, 0, width)
    if kind == "movsx":
        widths = [8, 16] if cls == isa.ALU else [8, 16, 32]
        return I(cls | isa.MOV | isa.X, dst, draw(regs), draw(st.sampled_from(widths)), 0)
    if kind == "signed":  # sdiv / smod
        op = draw(st.sampled_from([isa.DIV, isa.MOD]))
        if draw(st.booleans()):
            return I(cls | op | isa.X, dst, draw(regs), 1, 0)
        return I(cls | op | isa.K, dst, 0, 1, draw(s32s.filter(bool)))
    op = draw(st.sampled_from(ALU_OPS))
    if draw(st.booleans()):
        return I(cls | op | isa.X, dst, draw(regs), 0, 0)
    if op in (isa.LSH, isa.RSH, isa.ARSH):
        imm = draw(st.integers(0, bits - 1))
    elif op in (isa.DIV, isa.MOD):
        imm = draw(s32s.filter(bool))
    else:
        imm = draw(s32s)
    return I(cls | op | isa.K, dst, 0, 0, imm)


def _stack_offset(draw, size: int) -> int:
    return -draw(st.integers(1, STACK_BYTES // size)) * size


@st.composite
def memory_insn(draw) -> I:
    size_code = draw(st.sampled_from(SIZES))
    size = isa.SIZE_BYTES[size_code]
    off = _stack_offset(draw, size)
    kind = draw(st.sampled_from(["ldx", "ldx", "ldsx", "st", "stx", "stx"]))
    if kind == "ldx":
        return I(isa.LDX | isa.MEM | size_code, draw(regs), 10, off)
    if kind == "ldsx" and size_code != isa.DW:
        return I(isa.LDX | isa.MEMSX | size_code, draw(regs), 10, off)
    if kind == "st":
        return I(isa.ST | isa.MEM | size_code, 10, 0, off, draw(s32s))
    return I(isa.STX | isa.MEM | size_code, 10, draw(regs), off)


@st.composite
def atomic_insn(draw) -> I:
    size_code = draw(st.sampled_from([isa.W, isa.DW]))
    off = _stack_offset(draw, isa.SIZE_BYTES[size_code])
    op = draw(st.sampled_from(ATOMIC_OPS))
    src = draw(regs)
    return I(isa.STX | isa.ATOMIC | size_code, 10, src, off, op)


def _cond(draw) -> Jump:
    """A conditional jump with its target still unset (JMP or JMP32, register or immediate)."""
    cls = draw(st.sampled_from([isa.JMP, isa.JMP32]))
    op = draw(st.sampled_from(JMP_OPS))
    if draw(st.booleans()):
        return Jump(cls | op | isa.X, draw(regs), draw(regs), 0)
    return Jump(cls | op | isa.K, draw(regs), 0, draw(s32s))


def _goto(draw) -> Jump:
    return Jump(draw(st.sampled_from([isa.JMP | isa.JA, isa.JMP32 | isa.JA])))


def body_insn(*, memory: bool = True, atomics: bool = True) -> st.SearchStrategy[I]:
    choices = [alu_insn(), alu_insn(), alu_insn()]
    if memory:
        choices.append(memory_insn())
    if atomics:
        choices.append(atomic_insn())
    choices.append(st.builds(lambda r, v: I.lddw(r, v), regs, u64s))
    return st.one_of(choices)


@st.composite
def _block(draw, budget: int, depth: int, memory: bool, atomics: bool,
           branches: bool, subprograms: int = 0) -> list[tuple]:
    """Nested structured code: ("insn", I) | ("if", cond, then) | ("ifelse", cond, then, else).

    Unconditional jumps only appear closing a then-branch, so no instruction is unreachable
    (the verifier's CFG check refuses unreachable code)."""
    items: list[tuple] = []
    while budget > 0:
        kind = draw(st.integers(3, 9)) if branches and depth < 3 and budget > 2 else 0
        if subprograms and draw(st.integers(0, 6)) == 0:
            items.append(("call", draw(st.integers(0, subprograms - 1)),
                          [I(isa.ALU64 | isa.MOV | isa.K, r, 0, 0, draw(s32s)) for r in range(1, 6)],
                          [I(isa.ALU64 | isa.MOV | isa.K, r, 0, 0, draw(s32s)) for r in range(1, 6)]))
            budget -= 1
        elif kind == 9:
            then = draw(_block(draw(st.integers(1, min(6, budget - 1))), depth + 1, memory,
                               atomics, branches, subprograms))
            other = draw(_block(draw(st.integers(1, min(6, budget - 1))), depth + 1, memory,
                                atomics, branches, subprograms))
            items.append(("ifelse", _cond(draw), then, other))
            budget -= 2 + _size(then) + _size(other)
        elif kind == 8:
            then = draw(_block(draw(st.integers(1, min(8, budget - 1))), depth + 1, memory,
                               atomics, branches, subprograms))
            items.append(("if", _cond(draw), then))
            budget -= 1 + _size(then)
        else:
            items.append(("insn", draw(body_insn(memory=memory, atomics=atomics))))
            budget -= 1
    return items


def _size(items: list[tuple]) -> int:
    total = 0
    for item in items:
        if item[0] == "insn":
            total += 1
        elif item[0] == "call":
            total += 11
        elif item[0] == "if":
            total += 1 + _size(item[2])
        else:
            total += 2 + _size(item[2]) + _size(item[3])
    return total


def _flatten(items: list[tuple], out: list[Step], draw) -> None:
    """Append ``items`` to ``out``; jumps get the index of the step they skip to."""
    for item in items:
        if item[0] == "insn":
            out.append(item[1])
        elif item[0] == "call":
            # arguments r1-r5 set before; after the call r1-r5 are clobbered (the verifier
            # refuses to read them), so they get fresh values
            out.extend(item[2])
            out.append(Call(item[1]))
            out.extend(item[3])
        elif item[0] == "if":
            at = len(out)
            out.append(item[1])
            _flatten(item[2], out, draw)
            out[at] = Jump(item[1].opcode, item[1].dst, item[1].src, item[1].imm, len(out))
        else:
            at = len(out)
            out.append(item[1])
            _flatten(item[2], out, draw)
            goto_at = len(out)
            goto = _goto(draw)
            out.append(goto)
            out[at] = Jump(item[1].opcode, item[1].dst, item[1].src, item[1].imm, len(out))
            _flatten(item[3], out, draw)
            out[goto_at] = Jump(goto.opcode, target=len(out))


@st.composite
def sketches(draw, *, min_body: int = 1, max_body: int = 24, branches: bool = True,
             memory: bool = True, atomics: bool = True, calls: int = 0) -> Sketch:
    """A program body: initialisation, then code with optional forward branches (if and
    if/else, nested up to three deep); with ``calls`` = N, up to N subprograms called with
    bpf-to-bpf calls (each initialises r0, r6-r9 and its own stack, reads its arguments
    r1-r5, and has branches of its own)."""
    subprograms = []
    for _ in range(draw(st.integers(1, calls)) if calls else 0):
        sub_steps: list[Step] = list(draw(init_steps(first_reg=6)))
        sub_steps.insert(0, I(isa.ALU64 | isa.MOV | isa.K, 0, 0, 0, draw(s32s)))
        _flatten(draw(_block(draw(st.integers(1, 12)), 0, memory, atomics, branches)),
                 sub_steps, draw)
        subprograms.append(Sketch(sub_steps))
    steps: list[Step] = list(draw(init_steps()))
    budget = draw(st.integers(min_body, max_body))
    _flatten(draw(_block(budget, 0, memory, atomics, branches, len(subprograms))), steps, draw)
    called = {step.number for step in steps if isinstance(step, Call)}
    for number in range(len(subprograms)):  # an uncalled subprogram is unreachable code
        if number not in called:
            args = [I(isa.ALU64 | isa.MOV | isa.K, r, 0, 0, draw(s32s)) for r in range(1, 6)]
            _flatten([("call", number, args, args)], steps, draw)
    return Sketch(steps, subprograms)


def programs(**kwargs) -> st.SearchStrategy[Program]:
    """Valid programs returning r0 (see :func:`sketches` for the options)."""
    return sketches(**kwargs).map(lambda s: s.build())


def straight_line_programs(**kwargs) -> st.SearchStrategy[Program]:
    return sketches(branches=False, **kwargs).map(lambda s: s.build())


def describe(program: Program) -> str:
    """The program as text for a failure report (LLVM syntax when the disassembler exists)."""
    try:
        from pybpf.asm import disassemble
        return disassemble(program)
    except Exception:  # the assembler package may not be there yet: fall back to raw slots
        return "\n".join(f"{i:4}: {insn}" for i, insn in enumerate(program.insns))
