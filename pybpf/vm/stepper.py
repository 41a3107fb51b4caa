"""The plain stepping interpreter: one instruction at a time, registers in a list.

This is the readable reference path. ``pybpf run --trace`` uses it (it can report each
instruction with the registers it changed), and the translated fast path (:mod:`.translate`)
hands over to it to find the exact instruction at which the budget runs out. Tests run both
paths on the same programs and require identical results.

Each opcode maps to one handler method (a table, built from :data:`pybpf.isa.OPCODES`); a
handler performs the instruction and returns the next program counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .. import isa
from ..errors import BudgetExceeded, VMError
from ..helpers.kfuncs import KFUNC_KEY
from . import semantics as sem

if TYPE_CHECKING:  # pragma: no cover
    from .interpreter import Interpreter

M64 = sem.M64
M32 = sem.M32


@dataclass
class Frame:
    """A suspended caller: where to resume and its registers r1-r9."""

    return_pc: int
    saved: list[int]


class _Exit(Exception):
    """Internal: the outermost frame executed ``exit``."""


class Stepper:
    """Executes a program of an :class:`Interpreter` one instruction at a time."""

    def __init__(self, vm: "Interpreter", trace: Callable[[int, isa.Instruction, list[int],
                                                             list[int]], None] | None = None):
        self.vm = vm
        self.trace = trace
        self.regs = [0] * isa.NUM_REGS
        self.frames: list[Frame] = []
        self.depth = 0
        self.count = 0
        self._handlers = self._build_table()

    # --- the table ---------------------------------------------------------------------------
    def _build_table(self) -> dict[int, Callable[[isa.Instruction, int], int]]:
        table: dict[int, Callable[[isa.Instruction, int], int]] = {}
        for opcode, info in isa.OPCODES.items():
            cls = opcode & 0x07
            op = opcode & 0xF0
            if cls in (isa.ALU, isa.ALU64):
                if op == isa.END:
                    table[opcode] = self._endian
                elif op == isa.NEG:
                    table[opcode] = self._neg
                elif op == isa.MOV:
                    table[opcode] = self._mov
                else:
                    table[opcode] = self._binary
            elif cls in (isa.JMP, isa.JMP32):
                if op == isa.JA:
                    table[opcode] = self._ja
                elif op == isa.EXIT:
                    table[opcode] = self._exit
                elif op == isa.CALL:
                    table[opcode] = self._callx if opcode & isa.X else self._call
                else:
                    table[opcode] = self._jcond
            elif cls == isa.LDX:
                table[opcode] = self._ldx
            elif cls == isa.ST:
                table[opcode] = self._st
            elif cls == isa.STX:
                table[opcode] = self._atomic if opcode & 0xE0 == isa.ATOMIC else self._stx
            elif opcode == isa.LDDW:
                table[opcode] = self._lddw
            elif cls == isa.LD:
                table[opcode] = self._ld_packet
        return table

    # --- running -----------------------------------------------------------------------------
    def run(self, pc: int, stop_count: int | None = None) -> int:
        """Run from ``pc`` until the outermost frame exits; returns r0."""
        vm = self.vm
        code = vm.code
        budget = vm.budget
        handlers = self._handlers
        regs = self.regs
        trace = self.trace
        try:
            while True:
                insn = code[pc] if 0 <= pc < len(code) else None
                if insn is None:
                    raise VMError("execution left the program" if not 0 <= pc < len(code)
                                  else "execution entered the middle of a 64-bit load", pc=pc)
                if self.count >= budget:
                    raise BudgetExceeded(f"instruction budget of {budget} exhausted "
                                         "(the program may not terminate)", pc=pc)
                self.count += 1
                if trace is None:
                    pc = handlers[insn.opcode](insn, pc)
                else:
                    before = regs[:]
                    try:
                        npc = handlers[insn.opcode](insn, pc)
                    finally:   # the final exit (and a faulting instruction) are shown too
                        trace(pc, insn, before, regs)
                    pc = npc
        except _Exit:
            return regs[0]

    # --- helpers -----------------------------------------------------------------------------
    def _src(self, insn: isa.Instruction, bits: int) -> int:
        if insn.opcode & isa.X:
            return self.regs[insn.src] & ((1 << bits) - 1)
        return insn.imm & ((1 << bits) - 1)

    def _addr(self, reg: int, off: int) -> int:
        return (self.regs[reg] + off) & M64

    # --- ALU ---------------------------------------------------------------------------------
    def _binary(self, insn: isa.Instruction, pc: int) -> int:
        bits = 64 if insn.cls == isa.ALU64 else 32
        mask = (1 << bits) - 1
        fn = sem.BINARY[(insn.opcode & 0xF0, insn.off)]
        self.regs[insn.dst] = fn(self.regs[insn.dst] & mask, self._src(insn, bits), bits)
        return pc + 1

    def _neg(self, insn: isa.Instruction, pc: int) -> int:
        bits = 64 if insn.cls == isa.ALU64 else 32
        self.regs[insn.dst] = -self.regs[insn.dst] & ((1 << bits) - 1)
        return pc + 1

    def _mov(self, insn: isa.Instruction, pc: int) -> int:
        bits = 64 if insn.cls == isa.ALU64 else 32
        mask = (1 << bits) - 1
        if insn.opcode & isa.X and insn.off:
            value = sem.sext(self.regs[insn.src], insn.off) & mask   # movsx
        else:
            value = self._src(insn, bits)
        self.regs[insn.dst] = value
        return pc + 1

    def _endian(self, insn: isa.Instruction, pc: int) -> int:
        self.regs[insn.dst] = sem.ENDIAN[insn.opcode](self.regs[insn.dst], insn.imm)
        return pc + 1

    # --- jumps and calls ---------------------------------------------------------------------
    def _ja(self, insn: isa.Instruction, pc: int) -> int:
        return insn.jump_target(pc)

    def _jcond(self, insn: isa.Instruction, pc: int) -> int:
        bits = 64 if insn.cls == isa.JMP else 32
        a = self.regs[insn.dst] & ((1 << bits) - 1)
        if sem.CONDITIONS[insn.opcode & 0xF0](a, self._src(insn, bits), bits):
            return pc + 1 + insn.off
        return pc + 1

    def _exit(self, insn: isa.Instruction, pc: int) -> int:
        if not self.frames:
            raise _Exit
        frame = self.frames.pop()
        self.regs[1:10] = frame.saved
        self.depth -= 1
        self.regs[10] = self.vm.frame_pointer(self.depth)
        return frame.return_pc

    def _enter(self, target: int, pc: int) -> int:
        if self.depth + 1 >= isa.MAX_CALL_DEPTH:
            raise VMError(f"call depth limit of {isa.MAX_CALL_DEPTH} frames exceeded", pc=pc)
        regs = self.regs
        self.frames.append(Frame(pc + 1, regs[1:10]))
        self.depth += 1
        regs[0] = 0
        regs[6:10] = [0, 0, 0, 0]
        regs[10] = self.vm.frame_pointer(self.depth)
        return target

    def _call(self, insn: isa.Instruction, pc: int) -> int:
        if insn.src == isa.CALL_LOCAL:
            return self._enter(pc + 1 + insn.imm, pc)
        if insn.src == isa.CALL_KFUNC:
            return self._helper(KFUNC_KEY | insn.imm & isa.U32, pc)
        return self._helper(insn.imm, pc)

    def _callx(self, insn: isa.Instruction, pc: int) -> int:
        kind, target = self.vm.resolve_callx(self.regs[insn.dst], pc)
        if kind == "func":
            return self._enter(target, pc)
        return self._helper(target, pc)

    def _helper(self, hid: int, pc: int) -> int:
        from .interpreter import TailCallReturn

        regs = self.regs
        try:
            regs[0], self.count = self.vm.call_helper_counted(
                hid, pc, regs[1], regs[2], regs[3], regs[4], regs[5], self.count, self.depth)
        except TailCallReturn as exc:
            # a tail call from a subprogram replaces that subprogram: its caller goes on
            if exc.depth != self.depth or not self.frames:
                raise
            regs[0] = exc.value
            return self._exit(None, pc)     # type: ignore[arg-type]
        return pc + 1

    # --- memory ------------------------------------------------------------------------------
    def _ldx(self, insn: isa.Instruction, pc: int) -> int:
        size = isa.SIZE_BYTES[insn.opcode & 0x18]
        value = self.vm.load(self._addr(insn.src, insn.off), size, pc)
        if insn.opcode & 0xE0 == isa.MEMSX:
            value = sem.sext(value, 8 * size) & M64
        self.regs[insn.dst] = value
        return pc + 1

    def _st(self, insn: isa.Instruction, pc: int) -> int:
        size = isa.SIZE_BYTES[insn.opcode & 0x18]
        self.vm.store(self._addr(insn.dst, insn.off), size, insn.imm, pc)
        return pc + 1

    def _stx(self, insn: isa.Instruction, pc: int) -> int:
        size = isa.SIZE_BYTES[insn.opcode & 0x18]
        self.vm.store(self._addr(insn.dst, insn.off), size, self.regs[insn.src], pc)
        return pc + 1

    def _atomic(self, insn: isa.Instruction, pc: int) -> int:
        size = isa.SIZE_BYTES[insn.opcode & 0x18]
        bits = 8 * size
        mask = (1 << bits) - 1
        addr = self._addr(insn.dst, insn.off)
        regs = self.regs
        old = self.vm.load(addr, size, pc, write=True)
        if insn.imm == isa.ATOMIC_CMPXCHG:
            if old == regs[0] & mask:
                self.vm.store(addr, size, regs[insn.src], pc)
            regs[0] = old
            return pc + 1
        new = sem.ATOMIC_UPDATE[insn.imm & ~isa.ATOMIC_FETCH](old, regs[insn.src] & mask)
        self.vm.store(addr, size, new & mask, pc)
        if insn.imm & isa.ATOMIC_FETCH:
            regs[insn.src] = old
        return pc + 1

    def _lddw(self, insn: isa.Instruction, pc: int) -> int:
        self.regs[insn.dst] = self.vm.lddw_value(insn, pc)
        return pc + 2

    def _ld_packet(self, insn: isa.Instruction, pc: int) -> int:
        size = isa.SIZE_BYTES[insn.opcode & 0x18]
        off = insn.imm
        if insn.opcode & 0xE0 == isa.IND:
            off = sem.sext(self.regs[insn.src] + insn.imm, 32)
        self.regs[0] = self.vm.load_packet(off, size)
        return pc + 1
