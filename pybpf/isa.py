"""The eBPF instruction set: opcode tables, the Instruction record, encoding and decoding.

Follows RFC 9669 (BPF Instruction Set Architecture) and the Linux kernel's reading of it. Like
CPython's ``opcode`` module, the tables are built by tiny helpers so that each opcode is one
line and the table is the documentation. Every other part of pybpf (assembler, interpreter, JIT,
verifier, kernel loader) speaks in terms of this module.

An :class:`Instruction` is one *logical* instruction. The 64-bit immediate load (``lddw``)
occupies two 8-byte slots; it is one ``Instruction`` whose ``imm_hi`` holds the second slot's
immediate. Jump offsets and program counters always count slots, as the kernel does.

Decoding validates the fields RFC 9669 reserves (they must be zero) so that a program the
kernel would refuse as malformed is refused here too, with the instruction index.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable, Iterator

from .errors import DecodeError

# --- instruction classes (RFC 9669 §3) -------------------------------------------------------
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
CLASS_NAMES = {LD: "ld", LDX: "ldx", ST: "st", STX: "stx", ALU: "alu", JMP: "jmp",
               JMP32: "jmp32", ALU64: "alu64"}

# source bit of ALU and JMP classes
K, X = 0x00, 0x08

# ALU operations (high nibble)
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR, MOV, ARSH, END = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0)

# JMP operations (high nibble)
JA, JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, CALL, EXIT, JLT, JLE, JSLT, JSLE = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0)

# sizes and modes of load/store classes
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
SIZE_BYTES = {W: 4, H: 2, B: 1, DW: 8}
IMM, ABS, IND, MEM, MEMSX, ATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xC0

# atomic operations, carried in imm (RFC 9669 §5.3)
ATOMIC_FETCH = 0x01
ATOMIC_ADD, ATOMIC_OR, ATOMIC_AND, ATOMIC_XOR = 0x00, 0x40, 0x50, 0xA0
ATOMIC_XCHG = 0xE0 | ATOMIC_FETCH
ATOMIC_CMPXCHG = 0xF0 | ATOMIC_FETCH
ATOMIC_OPS = {
    ATOMIC_ADD: "add", ATOMIC_OR: "or", ATOMIC_AND: "and", ATOMIC_XOR: "xor",
    ATOMIC_ADD | ATOMIC_FETCH: "fetch_add", ATOMIC_OR | ATOMIC_FETCH: "fetch_or",
    ATOMIC_AND | ATOMIC_FETCH: "fetch_and", ATOMIC_XOR | ATOMIC_FETCH: "fetch_xor",
    ATOMIC_XCHG: "xchg", ATOMIC_CMPXCHG: "cmpxchg",
}

# pseudo sources of the 64-bit immediate load (RFC 9669 §5.4, kernel's BPF_PSEUDO_*)
PSEUDO_IMM64 = 0
PSEUDO_MAP_FD = 1
PSEUDO_MAP_VALUE = 2
PSEUDO_BTF_ID = 3
PSEUDO_FUNC = 4
PSEUDO_MAP_IDX = 5
PSEUDO_MAP_IDX_VALUE = 6
LDDW_PSEUDO_NAMES = {
    PSEUDO_IMM64: "imm64", PSEUDO_MAP_FD: "map_fd", PSEUDO_MAP_VALUE: "map_value",
    PSEUDO_BTF_ID: "btf_id", PSEUDO_FUNC: "func", PSEUDO_MAP_IDX: "map_idx",
    PSEUDO_MAP_IDX_VALUE: "map_idx_value",
}

# sources of CALL
CALL_HELPER = 0
CALL_LOCAL = 1  # BPF_PSEUDO_CALL: bpf-to-bpf, imm is the slot offset
CALL_KFUNC = 2  # BPF_PSEUDO_KFUNC_CALL: imm is a BTF id

# registers
NUM_REGS = 11
FRAME_POINTER = 10
STACK_SIZE = 512
MAX_CALL_DEPTH = 8

U64 = 0xFFFF_FFFF_FFFF_FFFF
U32 = 0xFFFF_FFFF


def sext(value: int, bits: int) -> int:
    """Interpret the low ``bits`` of ``value`` as a two's-complement signed integer."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


# --- the opcode table -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OpInfo:
    """What one opcode byte means and which instruction fields it uses.

    ``uses`` names the fields that carry meaning (``dst``, ``src``, ``off``, ``imm``); every other
    field is reserved and must be zero. ``offs`` and ``imms``, when set, restrict those fields
    to a set of legal values (for example the signed division flag or byte-swap widths).
    """

    opcode: int
    name: str           # uBPF / bpf_conformance mnemonic
    group: str          # RFC 9669 conformance group
    uses: frozenset[str]
    offs: frozenset[int] | None = None
    imms: frozenset[int] | None = None
    srcs: frozenset[int] | None = None
    dst_writable: bool = True  # whether dst is written (False for stores, jumps)

    @property
    def cls(self) -> int:
        return self.opcode & 0x07


OPCODES: dict[int, OpInfo] = {}


def _op(opcode: int, name: str, group: str, uses: str, *, offs=None, imms=None, srcs=None,
        dst_writable=True) -> None:
    OPCODES[opcode] = OpInfo(opcode, name, group, frozenset(uses.split()),
                             frozenset(offs) if offs is not None else None,
                             frozenset(imms) if imms is not None else None,
                             frozenset(srcs) if srcs is not None else None, dst_writable)


_ALU_NAMES = {ADD: "add", SUB: "sub", MUL: "mul", DIV: "div", OR: "or", AND: "and",
              LSH: "lsh", RSH: "rsh", MOD: "mod", XOR: "xor", MOV: "mov", ARSH: "arsh"}
for _cls, _suffix, _width in ((ALU, "32", "32"), (ALU64, "", "64")):
    for _code, _name in _ALU_NAMES.items():
        _group = f"divmul{_width}" if _code in (MUL, DIV, MOD) else f"base{_width}"
        _signed_offs = {0, 1} if _code in (DIV, MOD) else {0}
        _op(_cls | K | _code, _name + _suffix, _group, "dst imm", offs=_signed_offs)
        if _code == MOV:
            # movsx: off selects the width of the sign extension (cpu v4)
            _op(_cls | X | _code, _name + _suffix, _group, "dst src",
                offs={0, 8, 16} if _cls == ALU else {0, 8, 16, 32})
        else:
            _op(_cls | X | _code, _name + _suffix, _group, "dst src", offs=_signed_offs)
    _op(_cls | K | NEG, "neg" + _suffix, f"base{_width}", "dst")
_op(ALU | K | END, "le", "base32", "dst imm", imms={16, 32, 64})
_op(ALU | X | END, "be", "base32", "dst imm", imms={16, 32, 64})
_op(ALU64 | K | END, "bswap", "base64", "dst imm", imms={16, 32, 64})

_JMP_NAMES = {JEQ: "jeq", JGT: "jgt", JGE: "jge", JSET: "jset", JNE: "jne", JSGT: "jsgt",
              JSGE: "jsge", JLT: "jlt", JLE: "jle", JSLT: "jslt", JSLE: "jsle"}
for _cls, _suffix, _group in ((JMP, "", "base32"), (JMP32, "32", "base32")):
    for _code, _name in _JMP_NAMES.items():
        _op(_cls | K | _code, _name + _suffix, _group, "dst off imm", dst_writable=False)
        _op(_cls | X | _code, _name + _suffix, _group, "dst src off", dst_writable=False)
_op(JMP | JA, "ja", "base32", "off", dst_writable=False)
_op(JMP32 | JA, "gotol", "base32", "imm", dst_writable=False)
_op(JMP | CALL, "call", "base32", "src imm", srcs={CALL_HELPER, CALL_LOCAL, CALL_KFUNC},
    dst_writable=False)
_op(JMP | X | CALL, "callx", "callx", "dst", dst_writable=False)
_op(JMP | EXIT, "exit", "base32", "", dst_writable=False)

_SIZE_SUFFIX = {W: "w", H: "h", B: "b", DW: "dw"}
for _size, _sfx in _SIZE_SUFFIX.items():
    _group = "base64" if _size == DW else "base32"
    _op(LDX | MEM | _size, "ldx" + _sfx, _group, "dst src off")
    _op(ST | MEM | _size, "st" + _sfx, _group, "dst off imm", dst_writable=False)
    _op(STX | MEM | _size, "stx" + _sfx, _group, "dst src off", dst_writable=False)
    if _size != DW:
        _op(LDX | MEMSX | _size, "ldxs" + _sfx, _group, "dst src off")
        _op(LD | ABS | _size, "ldabs" + _sfx, "packet", "imm")
        _op(LD | IND | _size, "ldind" + _sfx, "packet", "src imm")
_op(STX | ATOMIC | W, "atomic32", "atomic32", "dst src off imm", imms=set(ATOMIC_OPS),
    dst_writable=False)
_op(STX | ATOMIC | DW, "atomic64", "atomic64", "dst src off imm", imms=set(ATOMIC_OPS),
    dst_writable=False)
_op(LD | IMM | DW, "lddw", "base64", "dst src imm", srcs=set(LDDW_PSEUDO_NAMES))

LDDW = LD | IMM | DW
CALLX = JMP | X | CALL


def opcode_info(opcode: int) -> OpInfo | None:
    return OPCODES.get(opcode)


# --- the instruction record -------------------------------------------------------------------

_SLOT = struct.Struct("<BBhi")


@dataclass(frozen=True, slots=True)
class Instruction:
    """One eBPF instruction (the 64-bit immediate load takes two slots).

    opcode: the 8-bit opcode (class | source/size | operation/mode)
    dst, src: register numbers (4 bits each; dst is the low nibble of byte 1)
    off: signed 16-bit offset (jump distance in slots, memory displacement, or a modifier)
    imm: signed 32-bit immediate
    imm_hi: for ``lddw`` only, the second slot's immediate (the high 32 bits)
    """

    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    imm_hi: int | None = None

    @property
    def cls(self) -> int:
        return self.opcode & 0x07

    @property
    def slots(self) -> int:
        return 2 if self.opcode == LDDW else 1

    @property
    def info(self) -> OpInfo | None:
        return OPCODES.get(self.opcode)

    @property
    def name(self) -> str:
        info = OPCODES.get(self.opcode)
        return info.name if info else f"unknown(0x{self.opcode:02x})"

    @property
    def imm64(self) -> int:
        """The unsigned 64-bit immediate of ``lddw``."""
        return (self.imm & U32) | (((self.imm_hi or 0) & U32) << 32)

    @property
    def is_jump(self) -> bool:
        """A jump with a target (conditional or not); not call or exit."""
        cls = self.cls
        if cls not in (JMP, JMP32):
            return False
        op = self.opcode & 0xF0
        return op not in (CALL, EXIT)

    def jump_target(self, pc: int) -> int:
        """The slot a jump at slot ``pc`` goes to when taken."""
        if self.opcode == JMP32 | JA:
            return pc + 1 + self.imm
        return pc + 1 + self.off

    def encode(self) -> bytes:
        first = _SLOT.pack(self.opcode, (self.src << 4) | self.dst, self.off, self.imm)
        if self.opcode == LDDW:
            return first + _SLOT.pack(0, 0, 0, self.imm_hi or 0)
        return first

    @classmethod
    def lddw(cls, dst: int, value: int, src: int = PSEUDO_IMM64) -> "Instruction":
        value &= U64
        return cls(LDDW, dst, src, 0, sext(value, 32), sext(value >> 32, 32))


def encode(insns: Iterable[Instruction]) -> bytes:
    """Little-endian bytecode of a sequence of instructions."""
    return b"".join(i.encode() for i in insns)


def _check_fields(insn: Instruction, info: OpInfo, index: int) -> None:
    uses = info.uses
    name = info.name
    if "dst" not in uses and insn.dst:
        raise DecodeError(f"{name}: reserved dst field is {insn.dst}, must be 0", index)
    if "src" not in uses and insn.src:
        raise DecodeError(f"{name}: reserved src field is {insn.src}, must be 0", index)
    if info.offs is not None and info.offs != {0}:
        if insn.off not in info.offs:
            raise DecodeError(f"{name}: invalid offset {insn.off}", index)
    elif insn.off and ("off" not in uses or info.offs == {0}):
        raise DecodeError(f"{name}: reserved offset field is {insn.off}, must be 0", index)
    if info.imms is not None:
        if insn.imm not in info.imms:
            raise DecodeError(f"{name}: invalid immediate {insn.imm:#x}", index)
    elif "imm" not in uses and insn.imm:
        raise DecodeError(f"{name}: reserved immediate field is {insn.imm}, must be 0", index)
    if info.srcs is not None and insn.src not in info.srcs:
        raise DecodeError(f"{name}: invalid source {insn.src}", index)
    if insn.dst >= NUM_REGS:
        raise DecodeError(f"{name}: invalid destination register r{insn.dst}", index)
    if "src" in uses and info.srcs is None and insn.src >= NUM_REGS:
        raise DecodeError(f"{name}: invalid source register r{insn.src}", index)


def validate(insn: Instruction, index: int = 0) -> None:
    """Raise :class:`DecodeError` if ``insn`` is not a well-formed instruction."""
    info = OPCODES.get(insn.opcode)
    if info is None:
        raise DecodeError(f"unknown opcode 0x{insn.opcode:02x}", index)
    _check_fields(insn, info, index)


def iter_slots(data: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """Raw (opcode, dst, src, off, imm) of every 8-byte slot."""
    for pc, (opcode, regs, off, imm) in enumerate(_SLOT.iter_unpack(data)):
        yield opcode, regs & 0x0F, regs >> 4, off, imm


def decode(data: bytes, *, check: bool = True) -> list[Instruction]:
    """Decode little-endian bytecode into logical instructions.

    With ``check`` (the default) every instruction is validated and jump targets must land on
    an instruction inside the program (not past its end, not inside a 64-bit load).
    """
    if len(data) % 8:
        raise DecodeError(f"bytecode length {len(data)} is not a multiple of 8 "
                          f"({len(data) % 8} trailing bytes)")
    slots = list(iter_slots(bytes(data)))
    insns: list[Instruction] = []
    pc = 0
    while pc < len(slots):
        opcode, dst, src, off, imm = slots[pc]
        if opcode == LDDW:
            if pc + 1 >= len(slots):
                raise DecodeError("lddw is truncated: its second slot is missing", pc)
            op2, dst2, src2, off2, imm2 = slots[pc + 1]
            if check and (op2 or dst2 or src2 or off2):
                raise DecodeError("lddw: second slot must have opcode, registers and offset 0",
                                  pc + 1)
            insn = Instruction(opcode, dst, src, off, imm, imm2)
        else:
            insn = Instruction(opcode, dst, src, off, imm)
        if check:
            validate(insn, pc)
        insns.append(insn)
        pc += insn.slots
    if check:
        check_jumps(insns)
    return insns


def slot_starts(insns: Iterable[Instruction]) -> list[int]:
    """The slot index of each logical instruction."""
    out = []
    pc = 0
    for insn in insns:
        out.append(pc)
        pc += insn.slots
    return out


def check_jumps(insns: list[Instruction]) -> None:
    """Every jump and local call must land on an instruction of the program."""
    starts = slot_starts(insns)
    valid = set(starts)
    total = starts[-1] + insns[-1].slots if insns else 0
    for pc, insn in zip(starts, insns):
        if insn.is_jump:
            target = insn.jump_target(pc)
        elif insn.opcode == JMP | CALL and insn.src == CALL_LOCAL:
            target = pc + 1 + insn.imm
        else:
            continue
        if not 0 <= target < total:
            raise DecodeError(f"{insn.name} to {target} is outside the program "
                              f"(0..{total - 1})", pc)
        if target not in valid:
            raise DecodeError(f"{insn.name} to {target} lands inside a 64-bit load", pc)
