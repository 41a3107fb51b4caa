"""A generator of random *unverified* programs for fuzzing and differential runs.

Programs decode (every instruction is well formed) but nothing else is promised: jumps go
backwards and forwards (loops only the budget stops), bases of memory accesses are any
register (the input data in r1, the frame in r10, garbage elsewhere) with offsets that may
leave the region, divisions by zero registers, calls to local functions that may recurse past
the depth limit, atomics, byte swaps and legacy packet loads. The generator is a plain
``random.Random`` walk so thousands of programs cost milliseconds; hypothesis drives it with a
seed.
"""

from __future__ import annotations

import random

from pybpf import isa
from pybpf.program import Program

I = isa.Instruction
ALU_OPS = [isa.ADD, isa.SUB, isa.MUL, isa.DIV, isa.OR, isa.AND, isa.LSH, isa.RSH, isa.MOD,
           isa.XOR, isa.MOV, isa.ARSH]
JMP_OPS = [isa.JEQ, isa.JGT, isa.JGE, isa.JSET, isa.JNE, isa.JSGT, isa.JSGE, isa.JLT, isa.JLE,
           isa.JSLT, isa.JSLE]
SIZES = [isa.B, isa.H, isa.W, isa.DW]
EDGES = [0, 1, -1, 2, 7, 8, -8, 16, 31, 32, 63, 64, 0x7F, 0xFF, 0x7FFF_FFFF, -0x8000_0000]
#: helpers whose results do not depend on time or randomness
DETERMINISTIC_HELPERS = [14, 15]   # get_current_pid_tgid, get_current_uid_gid


def _imm(rng: random.Random) -> int:
    return rng.choice(EDGES) if rng.random() < 0.6 else rng.randrange(-(1 << 31), 1 << 31)


def _reg(rng: random.Random) -> int:
    return rng.randrange(10)


def _offset(rng: random.Random) -> int:
    if rng.random() < 0.7:
        return rng.choice([0, 1, 2, 4, 8, 12, -8, -16, -64, -256, -504, -512, -513, 7, 60])
    return rng.randrange(-600, 100)


def random_insn(rng: random.Random, pc: int, n: int) -> list[I]:
    k = rng.random()
    if k < 0.35:
        cls = rng.choice([isa.ALU, isa.ALU64])
        op = rng.choice(ALU_OPS)
        off = 1 if op in (isa.DIV, isa.MOD) and rng.random() < 0.3 else 0
        if rng.random() < 0.5:
            if op == isa.MOV and rng.random() < 0.3:
                off = rng.choice([8, 16] + ([32] if cls == isa.ALU64 else []))
            return [I(cls | isa.X | op, _reg(rng), _reg(rng), off, 0)]
        return [I(cls | isa.K | op, _reg(rng), 0, off, _imm(rng))]
    if k < 0.40:
        choice = rng.random()
        width = rng.choice([16, 32, 64])
        if choice < 0.33:
            return [I(isa.ALU | isa.K | isa.END, _reg(rng), 0, 0, width)]
        if choice < 0.66:
            return [I(isa.ALU | isa.X | isa.END, _reg(rng), 0, 0, width)]
        return [I(isa.ALU64 | isa.K | isa.END, _reg(rng), 0, 0, width)]
    if k < 0.42:
        return [I(rng.choice([isa.ALU, isa.ALU64]) | isa.NEG, _reg(rng))]
    if k < 0.55:
        cls = rng.choice([isa.JMP, isa.JMP32])
        op = rng.choice(JMP_OPS)
        off = rng.randrange(-pc - 1, n - pc + 1) if rng.random() < 0.2 else rng.randrange(0, 6)
        if rng.random() < 0.5:
            return [I(cls | isa.X | op, _reg(rng), _reg(rng), off, 0)]
        return [I(cls | isa.K | op, _reg(rng), 0, off, _imm(rng))]
    if k < 0.57:
        return [I(isa.JMP | isa.JA, 0, 0, rng.randrange(-3, 6), 0)]
    if k < 0.75:
        size = rng.choice(SIZES)
        base = rng.choice([10, 10, 10, 1, 1, _reg(rng)])
        off = _offset(rng)
        kind = rng.random()
        if kind < 0.4:
            mode = isa.MEMSX if size != isa.DW and rng.random() < 0.3 else isa.MEM
            return [I(isa.LDX | mode | size, _reg(rng), base, off, 0)]
        if kind < 0.6:
            return [I(isa.ST | isa.MEM | size, base, 0, off, _imm(rng))]
        return [I(isa.STX | isa.MEM | size, base, _reg(rng), off, 0)]
    if k < 0.80:
        size = rng.choice([isa.W, isa.DW])
        op = rng.choice(sorted(isa.ATOMIC_OPS))
        base = rng.choice([10, 1, _reg(rng)])
        return [I(isa.STX | isa.ATOMIC | size, base, _reg(rng), rng.choice([-8, -16, 0, 4, 8]),
                  op)]
    if k < 0.84:
        return [I.lddw(_reg(rng), rng.choice([0, 1 << 63, (1 << 64) - 1, rng.getrandbits(64)]))]
    if k < 0.86:
        size = rng.choice([isa.B, isa.H, isa.W])
        if rng.random() < 0.5:
            return [I(isa.LD | isa.ABS | size, 0, 0, 0, rng.randrange(-2, 40))]
        return [I(isa.LD | isa.IND | size, 0, _reg(rng), 0, rng.randrange(-4, 40))]
    if k < 0.89:
        return [I(isa.JMP | isa.CALL, 0, isa.CALL_LOCAL, 0, rng.randrange(-pc - 1, n - pc))]
    if k < 0.90:
        return [I(isa.JMP | isa.CALL, 0, 0, 0, rng.choice(DETERMINISTIC_HELPERS))]
    if k < 0.92:
        return [I(isa.JMP | isa.EXIT)]
    return [I(isa.ALU64 | isa.K | isa.MOV, _reg(rng), 0, 0, _imm(rng))]


def random_program(rng: random.Random, n: int | None = None) -> Program:
    """A random well-formed (decodable) but unverified program of about ``n`` slots."""
    n = n or rng.randrange(4, 40)
    insns: list[I] = [I(isa.ALU64 | isa.X | isa.MOV, 6, 1, 0, 0)]
    while len(insns) < n:
        insns.extend(random_insn(rng, len(insns), n))
    insns.append(I(isa.JMP | isa.EXIT))
    # fix jumps and calls that land outside or inside a 64-bit load: retarget to the exit
    starts = isa.slot_starts(insns)
    valid = set(starts)
    total = starts[-1] + 1
    fixed = []
    for pc, insn in zip(starts, insns):
        if insn.is_jump or (insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_LOCAL):
            target = (insn.jump_target(pc) if insn.is_jump else pc + 1 + insn.imm)
            if target not in valid:
                delta = total - 1 - pc - 1
                insn = (I(insn.opcode, insn.dst, insn.src, insn.off, delta)
                        if not insn.is_jump or insn.opcode == isa.JMP32 | isa.JA
                        else I(insn.opcode, insn.dst, insn.src, delta, insn.imm))
        fixed.append(insn)
    program = Program(fixed, name="fuzz")
    isa.check_jumps(program.insns)
    return program
