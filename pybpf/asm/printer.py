"""Instructions as text, the way ``llvm-objdump-19 -d --mcpu=v4`` prints them.

:func:`format_instruction` gives one instruction's text; :func:`disassemble` lays a whole
program out like llvm-objdump does for a section::

    0000000000000000 <.text>:
           0:	b7 00 00 00 01 00 00 00	r0 = 0x1
           1:	05 00 01 00 00 00 00 00	goto +0x1 <done>

    0000000000000010 <done>:
           2:	95 00 00 00 00 00 00 00	exit

Addresses count 8-byte slots, every label starts a block headed by its byte address, and a
jump's target is annotated with the nearest label at or before it (``<loop+0x8>``); with no
label at offset 0 the first block is named after the section (``.text`` for raw bytecode), as
llvm-objdump names it. ``--mcpu=v4`` matters: it is what makes llvm-objdump print ``w``
registers for 32-bit loads, stores and atomics; tests/asm/ compares with it.

Deliberate differences, where llvm-objdump's text loses information and could not be
assembled back to the same bytes: an indirect packet load with a non-zero immediate prints as
``skb[r1 + 0x4]`` (llvm-objdump drops the immediate); ``ld_pseudo`` prints the full 64-bit
immediate when the second slot's half is non-zero; a bpf-to-bpf call prints as ``call NAME``
(llvm-objdump prints ``call 0x1``, the same text as helper 1); a map load of a program with
``.map`` declarations prints as ``r1 = NAME ll``. A kfunc call (``src`` 2) prints as
llvm-objdump prints it and so reads back as a helper call.
"""

from __future__ import annotations

from typing import Callable

from .. import isa
from ..isa import Instruction

Formatter = Callable[[Instruction], str]


def signed_hex(value: int) -> str:
    return f"-0x{-value:x}" if value < 0 else f"0x{value:x}"


def jump_offset(value: int) -> str:
    return f"-0x{-value:x}" if value < 0 else f"+0x{value:x}"


def memory(reg: int, off: int) -> str:
    return f"(r{reg} - 0x{-off:x})" if off < 0 else f"(r{reg} + 0x{off:x})"


_ALU_SYMBOLS = {isa.ADD: "+", isa.SUB: "-", isa.MUL: "*", isa.DIV: "/", isa.OR: "|",
                isa.AND: "&", isa.LSH: "<<", isa.RSH: ">>", isa.MOD: "%", isa.XOR: "^",
                isa.ARSH: "s>>", isa.MOV: ""}
_JMP_SYMBOLS = {isa.JEQ: "==", isa.JNE: "!=", isa.JGT: ">", isa.JGE: ">=", isa.JLT: "<",
                isa.JLE: "<=", isa.JSGT: "s>", isa.JSGE: "s>=", isa.JSLT: "s<",
                isa.JSLE: "s<=", isa.JSET: "&"}
_SIZE_BITS = {isa.B: 8, isa.H: 16, isa.W: 32, isa.DW: 64}
_ATOMIC_SYMBOLS = {isa.ATOMIC_ADD: "+", isa.ATOMIC_OR: "|", isa.ATOMIC_AND: "&",
                   isa.ATOMIC_XOR: "^"}
_ATOMIC_NAMES = {isa.ATOMIC_ADD: "add", isa.ATOMIC_OR: "or", isa.ATOMIC_AND: "and",
                 isa.ATOMIC_XOR: "xor"}
_ENDIAN_NAMES = {isa.ALU | isa.K | isa.END: "le", isa.ALU | isa.X | isa.END: "be",
                 isa.ALU64 | isa.K | isa.END: "bswap"}

FORMATTERS: dict[int, Formatter] = {}


def _alu(cls: int, op: int, source: int) -> Formatter:
    p = "w" if cls == isa.ALU else "r"
    sym = _ALU_SYMBOLS[op]

    def fmt(i: Instruction) -> str:
        signed = "s" if i.off == 1 and op in (isa.DIV, isa.MOD) else ""
        if source == isa.K:
            return f"{p}{i.dst} {signed}{sym}= {signed_hex(i.imm)}"
        if op == isa.MOV and i.off:
            return f"{p}{i.dst} = (s{i.off}){p}{i.src}"
        return f"{p}{i.dst} {signed}{sym}= {p}{i.src}"
    return fmt


def _jcc(cls: int, op: int, source: int) -> Formatter:
    p = "w" if cls == isa.JMP32 else "r"
    sym = _JMP_SYMBOLS[op]
    if source == isa.K:
        return lambda i: f"if {p}{i.dst} {sym} {signed_hex(i.imm)} goto {jump_offset(i.off)}"
    return lambda i: f"if {p}{i.dst} {sym} {p}{i.src} goto {jump_offset(i.off)}"


def _ldx(size: int, mode: int) -> Formatter:
    bits = _SIZE_BITS[size]
    kind = "s" if mode == isa.MEMSX else "u"
    p = "r" if size == isa.DW or mode == isa.MEMSX else "w"
    return lambda i: f"{p}{i.dst} = *({kind}{bits} *){memory(i.src, i.off)}"


def _st(size: int) -> Formatter:
    bits = _SIZE_BITS[size]
    return lambda i: f"*(u{bits} *){memory(i.dst, i.off)} = {signed_hex(i.imm)}"


def _stx(size: int) -> Formatter:
    bits = _SIZE_BITS[size]
    p = "r" if size == isa.DW else "w"
    return lambda i: f"*(u{bits} *){memory(i.dst, i.off)} = {p}{i.src}"


def _atomic(size: int) -> Formatter:
    bits = _SIZE_BITS[size]
    p = "r" if size == isa.DW else "w"
    xchg, cmpxchg = ("xchg_64", "cmpxchg_64") if size == isa.DW else ("xchg32_32", "cmpxchg32_32")

    def fmt(i: Instruction) -> str:
        where = memory(i.dst, i.off)
        op = i.imm & ~isa.ATOMIC_FETCH
        if i.imm == isa.ATOMIC_XCHG:
            return f"{p}{i.src} = {xchg}({where[1:-1]}, {p}{i.src})"
        if i.imm == isa.ATOMIC_CMPXCHG:
            return f"{p}0 = {cmpxchg}({where[1:-1]}, {p}0, {p}{i.src})"
        if op not in _ATOMIC_SYMBOLS:
            return "<unknown>"
        if i.imm & isa.ATOMIC_FETCH:
            return (f"{p}{i.src} = atomic_fetch_{_ATOMIC_NAMES[op]}((u{bits} *){where}, "
                    f"{p}{i.src})")
        return f"lock *(u{bits} *){where} {_ATOMIC_SYMBOLS[op]}= {p}{i.src}"
    return fmt


def _lddw(i: Instruction) -> str:
    if i.src == isa.PSEUDO_IMM64:
        return f"r{i.dst} = {signed_hex(isa.sext(i.imm64, 64))} ll"
    value = i.imm64 if i.imm_hi else i.imm & isa.U32
    return f"ld_pseudo\tr{i.dst}, 0x{i.src:x}, 0x{value:x}"


def _packet(size: int, mode: int) -> Formatter:
    bits = _SIZE_BITS[size]
    if mode == isa.ABS:
        return lambda i: f"r0 = *(u{bits} *)skb[{signed_hex(i.imm)}]"

    def fmt(i: Instruction) -> str:
        if i.imm:
            sign = "-" if i.imm < 0 else "+"
            return f"r0 = *(u{bits} *)skb[r{i.src} {sign} 0x{abs(i.imm):x}]"
        return f"r0 = *(u{bits} *)skb[r{i.src}]"
    return fmt


def _build() -> None:
    for cls in (isa.ALU, isa.ALU64):
        for op in _ALU_SYMBOLS:
            for source in (isa.K, isa.X):
                FORMATTERS[cls | source | op] = _alu(cls, op, source)
        p = "w" if cls == isa.ALU else "r"
        FORMATTERS[cls | isa.NEG] = lambda i, p=p: f"{p}{i.dst} = -{p}{i.dst}"
    for opcode, name in _ENDIAN_NAMES.items():
        FORMATTERS[opcode] = lambda i, name=name: f"r{i.dst} = {name}{i.imm} r{i.dst}"
    for cls in (isa.JMP, isa.JMP32):
        for op in _JMP_SYMBOLS:
            for source in (isa.K, isa.X):
                FORMATTERS[cls | source | op] = _jcc(cls, op, source)
    FORMATTERS[isa.JMP | isa.JA] = lambda i: f"goto {jump_offset(i.off)}"
    FORMATTERS[isa.JMP32 | isa.JA] = lambda i: f"gotol {jump_offset(i.imm)}"
    FORMATTERS[isa.JMP | isa.CALL] = lambda i: f"call {signed_hex(i.imm)}"
    FORMATTERS[isa.CALLX] = lambda i: f"callx r{i.dst}"
    FORMATTERS[isa.JMP | isa.EXIT] = lambda i: "exit"
    for size in _SIZE_BITS:
        FORMATTERS[isa.LDX | isa.MEM | size] = _ldx(size, isa.MEM)
        FORMATTERS[isa.ST | isa.MEM | size] = _st(size)
        FORMATTERS[isa.STX | isa.MEM | size] = _stx(size)
        if size != isa.DW:
            FORMATTERS[isa.LDX | isa.MEMSX | size] = _ldx(size, isa.MEMSX)
            FORMATTERS[isa.LD | isa.ABS | size] = _packet(size, isa.ABS)
            FORMATTERS[isa.LD | isa.IND | size] = _packet(size, isa.IND)
    FORMATTERS[isa.STX | isa.ATOMIC | isa.W] = _atomic(isa.W)
    FORMATTERS[isa.STX | isa.ATOMIC | isa.DW] = _atomic(isa.DW)
    FORMATTERS[isa.LDDW] = _lddw


_build()


def format_instruction(insn: Instruction) -> str:
    """The text llvm-objdump prints for ``insn`` (``<unknown>`` for an undefined opcode),
    without the jump-target annotation :func:`disassemble` adds."""
    fmt = FORMATTERS.get(insn.opcode)
    return fmt(insn) if fmt else "<unknown>"


def _symbols(labels: dict[int, str], section: str) -> list[tuple[int, str]]:
    """(byte address, name) of every block, sorted; the section names offset 0 if no label
    does."""
    syms = sorted((slot * 8, name) for slot, name in labels.items())
    if not syms or syms[0][0] != 0:
        syms.insert(0, (0, section))
    return syms


def _annotation(target: int, syms: list[tuple[int, str]]) -> str:
    """`` <label+0xN>`` for a jump to byte address ``target`` (two's complement when the
    target lies before the section, as llvm-objdump prints it)."""
    target &= isa.U64
    best = syms[0]
    for addr, name in syms:
        if addr <= target:
            best = (addr, name)
    delta = (target - best[0]) & isa.U64
    return f" <{best[1]}+0x{delta:x}>" if delta else f" <{best[1]}>"


def _map_directive(spec) -> str:
    flags = f" flags={spec.flags}" if spec.flags else ""
    return (f".map {spec.name} {spec.type} key={spec.key_size} value={spec.value_size} "
            f"max_entries={spec.max_entries}{flags}")


def _symbolic_text(insn: Instruction, pc: int, labels: dict[int, str], maps: list) -> str | None:
    """Text naming a map or a subprogram where llvm-objdump's would lose it (and so could not
    be assembled back): ``r1 = counters ll`` and ``call subprog``."""
    if insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_LOCAL:
        name = labels.get(pc + 1 + insn.imm)
        return f"call {name}" if name else None
    if insn.opcode == isa.LDDW and 0 <= insn.imm < len(maps):
        name = maps[insn.imm].name
        if insn.src == isa.PSEUDO_MAP_IDX and not insn.imm_hi:
            return f"r{insn.dst} = {name} ll"
        if insn.src == isa.PSEUDO_MAP_IDX_VALUE:
            return f"r{insn.dst} = {name} {'-' if insn.imm_hi < 0 else '+'} {abs(insn.imm_hi)} ll"
    return None


def disassemble(program_or_insns, *, labels: dict[int, str] | None = None,
                section: str | None = None, symbolic: bool = True) -> str:
    """llvm-objdump-style listing of a :class:`~pybpf.program.Program` or of instructions.

    ``labels`` (slot -> name) defaults to the program's; ``section`` names the first block when
    no label sits at offset 0 (default: the program's section, else ``.text``).

    The listing assembles back to the same program (:func:`pybpf.asm.assemble` reads
    llvm-objdump listings). To keep that true where llvm-objdump's text is ambiguous, a
    bpf-to-bpf call is written ``call NAME`` -- the target gets a label ``subprog_N`` (its
    slot) if it has none -- and, for a program with maps, ``.map`` directives come first and
    map loads are written ``r1 = NAME ll``. ``symbolic=False`` turns that off and prints
    exactly what llvm-objdump prints.
    """
    maps: list = []
    if isinstance(program_or_insns, (list, tuple)) or not hasattr(program_or_insns, "insns"):
        insns: list[Instruction] = list(program_or_insns)
        labels = dict(labels or {})
    else:
        insns = program_or_insns.insns
        labels = dict(program_or_insns.labels if labels is None else labels)
        section = section or program_or_insns.section
        maps = list(program_or_insns.maps)
    if not symbolic:
        maps = []
    pc = 0
    for insn in insns if symbolic else ():
        if insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_LOCAL:
            labels.setdefault(pc + 1 + insn.imm, f"subprog_{pc + 1 + insn.imm}")
        pc += insn.slots
    syms = _symbols(labels, section or ".text")
    starts = {addr: name for addr, name in syms}
    out: list[str] = [_map_directive(spec) for spec in maps]
    if out:
        out.append("")
    first = True
    pc = 0
    for insn in insns:
        addr = pc * 8
        if addr in starts:
            if not first:
                out.append("")
            out.append(f"{addr:016x} <{starts[addr]}>:")
        first = False
        raw = insn.encode()
        text = (symbolic and _symbolic_text(insn, pc, labels, maps)) or format_instruction(insn)
        if insn.is_jump and text != "<unknown>":
            text += _annotation(insn.jump_target(pc) * 8, syms)
        out.append(f"{pc:>8}:\t{' '.join(f'{b:02x}' for b in raw)}\t{text}")
        pc += insn.slots
    return "\n".join(out) + ("\n" if out else "")
