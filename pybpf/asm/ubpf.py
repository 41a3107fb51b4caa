"""The uBPF / bpf_conformance assembly syntax (``mov32 %r0, 1``, ``ldxw %r0, [%r1+4]``).

This is the syntax of the ``-- asm`` sections of the bpf_conformance ``.data`` files. The
mnemonics and operand rules follow the suite's own assembler (``lib/src/bpf_assembler.cc`` in
Alan-Jowett/bpf_conformance), read for behaviour, not copied: a mnemonic-first line with
comma- or blank-separated operands; a 32-bit immediate is a signed decimal or a hex number up
to ``0xffffffff``; an offset is a signed 16-bit decimal or hex up to ``0xffff``; jump targets are
``+N``/``-N`` or a label, and the first ``exit`` is an implicit label named ``exit``. Every
program in ``bytecode.jsonl`` assembles to the suite's bytes (tests/asm/test_conformance.py).

The mnemonic table is built from :data:`pybpf.isa.OPCODES` (whose names are uBPF's), plus the
forms the suite spells differently (``ja32``, ``movsx832``, ``swap16``, ``lock fetch add``,
``call local``).
"""

from __future__ import annotations

import re
from typing import Callable

from .. import isa
from ..isa import Instruction
from .builder import ProgramBuilder
from .lexer import INT16_MAX, INT16_MIN, INT32_MIN, SourceLine

Operand = tuple[str, int]  # text and its position in the line
Encoder = Callable[[ProgramBuilder, SourceLine, str, list[Operand]], None]

_OPERANDS = re.compile(r"\[[^\]]*\]?|[^\s,]+")
_MNEMONIC = re.compile(r"\s*(\S+)")
_MEM = re.compile(r"\[\s*(%\w+)\s*(?:([+-])\s*(\w+))?\s*\]\Z")
_HEX = re.compile(r"[+-]?0[xX][0-9a-fA-F]+\Z")
_DEC = re.compile(r"[+-]?\d+\Z")


# --- operands ---------------------------------------------------------------------------------

def _reg(line: SourceLine, op: Operand) -> int:
    text, pos = op
    if text.startswith("%r") and text[2:].isdigit() and str(int(text[2:])) == text[2:]:
        if int(text[2:]) <= 10:
            return int(text[2:])
        raise line.error(f"unknown register '{text}' (registers are %r0–%r10)", pos)
    raise line.error(f"expected a register %r0–%r10, got '{text}'", pos)


def _is_reg(op: Operand) -> bool:
    return op[0].startswith("%")


def _number(line: SourceLine, op: Operand, what: str) -> int:
    text, pos = op
    if _HEX.match(text):
        neg = text.startswith("-")
        value = int(text.lstrip("+-"), 16)
        return -value if neg else value
    if _DEC.match(text):
        return int(text)
    raise line.error(f"expected {what}, got '{text}'", pos)


def _imm32(line: SourceLine, op: Operand) -> int:
    """Hex is an unsigned bit pattern up to 0xffffffff; decimal is a signed 32-bit value."""
    value = _number(line, op, "an immediate")
    high = 0xFFFF_FFFF if _HEX.match(op[0]) else 0x7FFF_FFFF
    if not INT32_MIN <= value <= high:
        raise line.error(f"immediate {op[0]} is out of 32-bit range "
                         f"({INT32_MIN}..{high if high == 0x7FFF_FFFF else hex(high)})", op[1])
    return value - (1 << 32) if value > 0x7FFF_FFFF else value


def _off16(line: SourceLine, text: str, pos: int, what: str = "offset") -> int:
    value = _number(line, (text, pos), f"a 16-bit {what}")
    high = 0xFFFF if _HEX.match(text) else INT16_MAX
    if not INT16_MIN <= value <= high:
        raise line.error(f"{what} {text} is out of 16-bit range ({INT16_MIN}..{high})", pos)
    return value - (1 << 16) if value > INT16_MAX else value


def _mem(line: SourceLine, op: Operand) -> tuple[int, int]:
    """``[%rN]``, ``[%rN+off]`` or ``[%rN-off]`` -> (register, offset)."""
    text, pos = op
    m = _MEM.match(text)
    if not m:
        raise line.error(f"expected a memory operand like [%r1+4], got '{text}'", pos)
    reg = _reg(line, (m.group(1), pos + m.start(1)))
    if m.group(2) is None:
        return reg, 0
    return reg, _off16(line, m.group(2) + m.group(3), pos + m.start(2))


def _jump(b: ProgramBuilder, line: SourceLine, insn: Instruction, op: Operand,
          wide: bool = False) -> None:
    text, pos = op
    if text[0] in "+-":
        if wide:
            value = _number(line, op, "a jump offset")
            if not INT32_MIN <= value <= 0x7FFF_FFFF:
                raise line.error(f"jump offset {text} is out of 32-bit range", pos)
            b.emit(Instruction(insn.opcode, insn.dst, insn.src, insn.off, value), line)
        else:
            b.emit(Instruction(insn.opcode, insn.dst, insn.src,
                               _off16(line, text, pos, "jump offset"), insn.imm), line)
    elif re.match(r"[A-Za-z_.$][\w.$]*\Z", text):
        b.emit_symbolic(insn, line, "jump32" if wide else "jump", text, pos)
    else:
        raise line.error(f"expected a jump target (+N, -N or a label), got '{text}'", pos)


# --- encoders ---------------------------------------------------------------------------------

def _alu_encoder(k_opcode: int | None, x_opcode: int, off: int = 0) -> Encoder:
    """Register or immediate source; ``k_opcode`` None for register-only forms (movsx)."""
    def encode(b: ProgramBuilder, line: SourceLine, mnemonic: str, ops: list[Operand]) -> None:
        dst = _reg(line, ops[0])
        if _is_reg(ops[1]):
            b.emit(Instruction(x_opcode, dst, _reg(line, ops[1]), off), line)
        elif k_opcode is None:
            raise line.error(f"'{mnemonic}' needs a source register", ops[1][1])
        else:
            b.emit(Instruction(k_opcode, dst, 0, off, _imm32(line, ops[1])), line)
    return encode


def _unary_encoder(opcode: int, imm: int = 0) -> Encoder:
    def encode(b: ProgramBuilder, line: SourceLine, mnemonic: str, ops: list[Operand]) -> None:
        b.emit(Instruction(opcode, _reg(line, ops[0]), 0, 0, imm), line)
    return encode


def _jcc_encoder(k_opcode: int, x_opcode: int) -> Encoder:
    def encode(b: ProgramBuilder, line: SourceLine, mnemonic: str, ops: list[Operand]) -> None:
        dst = _reg(line, ops[0])
        if _is_reg(ops[1]):
            insn = Instruction(x_opcode, dst, _reg(line, ops[1]))
        else:
            insn = Instruction(k_opcode, dst, 0, 0, _imm32(line, ops[1]))
        _jump(b, line, insn, ops[2])
    return encode


def _ldx_encoder(opcode: int) -> Encoder:
    def encode(b: ProgramBuilder, line: SourceLine, mnemonic: str, ops: list[Operand]) -> None:
        dst = _reg(line, ops[0])
        src, off = _mem(line, ops[1])
        b.emit(Instruction(opcode, dst, src, off), line)
    return encode


def _st_encoder(opcode: int) -> Encoder:
    def encode(b: ProgramBuilder, line: SourceLine, mnemonic: str, ops: list[Operand]) -> None:
        dst, off = _mem(line, ops[0])
        b.emit(Instruction(opcode, dst, 0, off, _imm32(line, ops[1])), line)
    return encode


def _stx_encoder(opcode: int) -> Encoder:
    def encode(b: ProgramBuilder, line: SourceLine, mnemonic: str, ops: list[Operand]) -> None:
        dst, off = _mem(line, ops[0])
        b.emit(Instruction(opcode, dst, _reg(line, ops[1]), off), line)
    return encode


def _ldabs_encoder(opcode: int) -> Encoder:
    def encode(b: ProgramBuilder, line: SourceLine, mnemonic: str, ops: list[Operand]) -> None:
        b.emit(Instruction(opcode, imm=_imm32(line, ops[0])), line)
    return encode


def _ldind_encoder(opcode: int) -> Encoder:
    def encode(b: ProgramBuilder, line: SourceLine, mnemonic: str, ops: list[Operand]) -> None:
        b.emit(Instruction(opcode, 0, _reg(line, ops[0]), 0, _imm32(line, ops[1])), line)
    return encode


def _lddw(b: ProgramBuilder, line: SourceLine, mnemonic: str, ops: list[Operand]) -> None:
    dst = _reg(line, ops[0])
    value = _number(line, ops[1], "a 64-bit immediate")
    if not -(1 << 63) <= value < (1 << 64):
        raise line.error(f"immediate {ops[1][0]} is out of 64-bit range", ops[1][1])
    b.emit(Instruction.lddw(dst, value), line)


def _ja(b: ProgramBuilder, line: SourceLine, mnemonic: str, ops: list[Operand]) -> None:
    _jump(b, line, Instruction(isa.JMP | isa.JA), ops[0])


def _ja32(b: ProgramBuilder, line: SourceLine, mnemonic: str, ops: list[Operand]) -> None:
    _jump(b, line, Instruction(isa.JMP32 | isa.JA), ops[0], wide=True)


def _exit(b: ProgramBuilder, line: SourceLine, mnemonic: str, ops: list[Operand]) -> None:
    b.emit(Instruction(isa.JMP | isa.EXIT), line)


def _callx(b: ProgramBuilder, line: SourceLine, mnemonic: str, ops: list[Operand]) -> None:
    b.emit(Instruction(isa.CALLX, _reg(line, ops[-1])), line)


def _call(b: ProgramBuilder, line: SourceLine, mnemonic: str, ops: list[Operand]) -> None:
    """``call N`` / ``call helper N`` (helper), ``call %rN`` (callx), ``call local L``
    (bpf-to-bpf), ``call runtime N`` (kfunc by BTF id)."""
    if len(ops) == 1:
        mode, target = "helper", ops[0]
    elif len(ops) == 2:
        mode, target = ops[0][0], ops[1]
    else:
        raise line.error(f"'call' takes a target or a mode and a target, got {len(ops)} operands")
    if mode == "helper":
        if _is_reg(target):
            _callx(b, line, mnemonic, [target])
        elif _HEX.match(target[0]) or _DEC.match(target[0]):
            b.emit(Instruction(isa.JMP | isa.CALL, imm=_imm32(line, target)), line)
        else:
            b.emit_symbolic(Instruction(isa.JMP | isa.CALL), line, "call", target[0], target[1])
    elif mode == "local":
        if target[0][0] in "+-":
            b.emit(Instruction(isa.JMP | isa.CALL, src=isa.CALL_LOCAL,
                               imm=_imm32(line, target)), line)
        else:
            b.emit_symbolic(Instruction(isa.JMP | isa.CALL), line, "local", target[0], target[1])
    elif mode == "runtime":
        b.emit(Instruction(isa.JMP | isa.CALL, src=isa.CALL_KFUNC, imm=_imm32(line, target)),
               line)
    else:
        raise line.error(f"unknown call mode '{mode}' (helper, local or runtime)", ops[0][1])


_LOCK_OPS = {"add": isa.ATOMIC_ADD, "or": isa.ATOMIC_OR, "and": isa.ATOMIC_AND,
             "xor": isa.ATOMIC_XOR, "xchg": isa.ATOMIC_XCHG, "cmpxchg": isa.ATOMIC_CMPXCHG}


def _lock(b: ProgramBuilder, line: SourceLine, mnemonic: str, ops: list[Operand]) -> None:
    """``lock [fetch] OP [%rD+off], %rS`` with OP add/or/and/xor/xchg/cmpxchg, ``32`` suffix
    for the 32-bit form."""
    fetch = bool(ops) and ops[0][0] == "fetch"
    rest = ops[1:] if fetch else ops
    if len(rest) != 3:
        raise line.error("invalid number of operands for lock (expected "
                         "'lock [fetch] OP [%rD+off], %rS')")
    name, pos = rest[0]
    base = name[:-2] if name.endswith("32") else name
    if base not in _LOCK_OPS:
        raise line.error(f"unknown atomic operation '{name}' "
                         f"(add, or, and, xor, xchg, cmpxchg, optionally with a 32 suffix)", pos)
    imm = _LOCK_OPS[base] | (isa.ATOMIC_FETCH if fetch else 0)
    size = isa.W if name.endswith("32") else isa.DW
    dst, off = _mem(line, rest[1])
    b.emit(Instruction(isa.STX | isa.ATOMIC | size, dst, _reg(line, rest[2]), off, imm), line)


# --- the table: mnemonic -> (encoder, operand count or None when the encoder checks) ---------

MNEMONICS: dict[str, tuple[Encoder, int | None]] = {}


def _build_table() -> None:
    by_name: dict[str, dict[int, int]] = {}
    for opcode, info in isa.OPCODES.items():
        by_name.setdefault(info.name, {})[opcode & isa.X] = opcode
    alu_ops = [isa.ADD, isa.SUB, isa.MUL, isa.DIV, isa.OR, isa.AND, isa.LSH, isa.RSH,
               isa.MOD, isa.XOR, isa.MOV, isa.ARSH]
    for cls, suffixes in ((isa.ALU, ("32",)), (isa.ALU64, ("", "64"))):
        for op in alu_ops:
            name = isa.OPCODES[cls | isa.K | op].name.removesuffix("32")
            for sfx in suffixes:
                MNEMONICS[name + sfx] = (_alu_encoder(cls | isa.K | op, cls | isa.X | op), 2)
                if op in (isa.DIV, isa.MOD):
                    MNEMONICS["s" + name + sfx] = (
                        _alu_encoder(cls | isa.K | op, cls | isa.X | op, 1), 2)
        for sfx in suffixes:
            MNEMONICS["neg" + sfx] = (_unary_encoder(cls | isa.NEG), 1)
    for bits in (8, 16, 32):
        MNEMONICS[f"movsx{bits}64"] = (_alu_encoder(None, isa.ALU64 | isa.X | isa.MOV, bits), 2)
        if bits < 32:
            MNEMONICS[f"movsx{bits}32"] = (_alu_encoder(None, isa.ALU | isa.X | isa.MOV, bits), 2)
    for bits in (16, 32, 64):
        MNEMONICS[f"le{bits}"] = (_unary_encoder(isa.ALU | isa.K | isa.END, bits), 1)
        MNEMONICS[f"be{bits}"] = (_unary_encoder(isa.ALU | isa.X | isa.END, bits), 1)
        for name in ("swap", "bswap"):
            MNEMONICS[f"{name}{bits}"] = (_unary_encoder(isa.ALU64 | isa.K | isa.END, bits), 1)
    for cls, sfx in ((isa.JMP, ""), (isa.JMP32, "32")):
        for op in (isa.JEQ, isa.JGT, isa.JGE, isa.JSET, isa.JNE, isa.JSGT, isa.JSGE, isa.JLT,
                   isa.JLE, isa.JSLT, isa.JSLE):
            name = isa.OPCODES[cls | isa.K | op].name
            MNEMONICS[name] = (_jcc_encoder(cls | isa.K | op, cls | isa.X | op), 3)
    for size, sfx in ((isa.B, "b"), (isa.H, "h"), (isa.W, "w"), (isa.DW, "dw")):
        MNEMONICS["ldx" + sfx] = (_ldx_encoder(isa.LDX | isa.MEM | size), 2)
        MNEMONICS["st" + sfx] = (_st_encoder(isa.ST | isa.MEM | size), 2)
        MNEMONICS["stx" + sfx] = (_stx_encoder(isa.STX | isa.MEM | size), 2)
        if size != isa.DW:
            MNEMONICS["ldxs" + sfx] = (_ldx_encoder(isa.LDX | isa.MEMSX | size), 2)
            MNEMONICS["ldabs" + sfx] = (_ldabs_encoder(isa.LD | isa.ABS | size), 1)
            MNEMONICS["ldind" + sfx] = (_ldind_encoder(isa.LD | isa.IND | size), 2)
    MNEMONICS.update({
        "lddw": (_lddw, 2), "ja": (_ja, 1), "ja32": (_ja32, 1), "gotol": (_ja32, 1),
        "exit": (_exit, 0), "call": (_call, None), "callx": (_callx, 1), "lock": (_lock, None),
    })


_build_table()


def assemble_line(b: ProgramBuilder, line: SourceLine) -> None:
    """Encode one uBPF-syntax instruction line into ``b``."""
    m = _MNEMONIC.match(line.text)
    mnemonic, mpos = m.group(1), m.start(1)
    entry = MNEMONICS.get(mnemonic)
    if entry is None:
        raise line.error(f"unknown mnemonic '{mnemonic}'", mpos)
    encoder, count = entry
    ops = [(o.group(), o.start()) for o in _OPERANDS.finditer(line.text, m.end())]
    if count is not None and len(ops) != count:
        raise line.error(f"'{mnemonic}' takes {count} operand{'s' if count != 1 else ''}, "
                         f"got {len(ops)}", mpos)
    encoder(b, line, mnemonic, ops)


def finish(b: ProgramBuilder, first_exit: int | None) -> None:
    """The suite's convention: the first ``exit`` is a jump target named ``exit``."""
    if first_exit is not None and "exit" not in b.labels and \
            any(f.name == "exit" for f in b.fixups):
        b.labels["exit"] = first_exit
