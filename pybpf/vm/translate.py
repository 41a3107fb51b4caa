"""The fast path: translate each subprogram into one Python function, once.

A fetch-decode loop costs far more per instruction than the operation itself, so instead the
program's basic blocks are written out as Python source with the registers as local variables
(``r0`` ... ``r10``) and compiled with ``exec``; CPython then runs plain local-variable
arithmetic. The layout of a translated subprogram::

    def F12(r1, r2, r3, r4, r5, cnt, depth):      # entry slot 12
        r0 = r6 = r7 = r8 = r9 = 0
        ...
        b = 12                                     # the block to run next
        while True:
            if b <= 40:                            # a group of blocks (tree of guards)
                if b == 12:
                    cnt += 3                       # instructions in the block
                    if cnt > BUDGET: STEP(...)     # exact accounting: hand over to the stepper
                    r0 = (r0 + r1) & 0xFFFFFFFFFFFFFFFF
                    ...

Falling through to the next block costs one comparison and a backward jump restarts the
dispatch (a binary tree of guards, so O(log n) comparisons). A block that jumps to itself
becomes an inner ``while`` loop, and so does a loop whose blocks are contiguous and entered only
at the top (what compilers emit): its back edges dispatch among its own blocks only.
bpf-to-bpf calls are Python calls that return ``(r0, cnt)``; r6-r9 are preserved for free
because they are the caller's locals. Stack accesses relative to r10 with a constant in-frame
offset skip the region lookup (r10 is read-only, so the frame is known statically); every
other access goes through the checked :class:`pybpf.memory.Memory`.

The generated source depends only on the bytecode (instance data such as map addresses is
looked up in tables bound per interpreter), so it is cached by bytecode.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .. import isa
from ..errors import VMError
from ..helpers.kfuncs import KFUNC_KEY
from . import semantics as sem

if TYPE_CHECKING:  # pragma: no cover
    from .interpreter import Interpreter

M = "0xFFFFFFFFFFFFFFFF"
U32 = "0xFFFFFFFF"
S64 = 0x8000000000000000
S32 = 0x80000000
CHUNK = 6

_UNSIGNED_CMP = {isa.JEQ: "==", isa.JNE: "!=", isa.JGT: ">", isa.JGE: ">=", isa.JLT: "<",
                 isa.JLE: "<="}
_SIGNED_CMP = {isa.JSGT: ">", isa.JSGE: ">=", isa.JSLT: "<", isa.JSLE: "<="}
_STRUCT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


@dataclass
class Block:
    start: int
    pcs: list[int] = field(default_factory=list)
    successors: list[int] = field(default_factory=list)


# --- control-flow analysis ----------------------------------------------------------------------

def _ends_block(insn: isa.Instruction) -> bool:
    return insn.cls in (isa.JMP, isa.JMP32)


def _successors(code: list, pc: int) -> list[int]:
    insn = code[pc]
    nxt = pc + insn.slots
    if insn.cls not in (isa.JMP, isa.JMP32):
        return [nxt]
    op = insn.opcode & 0xF0
    if op == isa.EXIT:
        return []
    if op == isa.CALL:
        return [nxt]
    if op == isa.JA:
        return [insn.jump_target(pc)]
    return [pc + 1 + insn.off, nxt]


def _valid(code: list, pc: int) -> bool:
    return 0 <= pc < len(code) and code[pc] is not None


def find_leaders(code: list, entries: list[int]) -> set[int]:
    leaders = set(entries)
    for pc, insn in enumerate(code):
        if insn is not None and _ends_block(insn):
            leaders.update(t for t in _successors(code, pc) if _valid(code, t))
    return leaders


def function_blocks(code: list, entry: int, leaders: set[int]) -> dict[int, Block]:
    """The basic blocks reachable from ``entry`` without following calls."""
    blocks: dict[int, Block] = {}
    todo = [entry]
    while todo:
        start = todo.pop()
        if start in blocks or not _valid(code, start):
            continue
        block = Block(start)
        pc = start
        while True:
            block.pcs.append(pc)
            insn = code[pc]
            nxt = pc + insn.slots
            if _ends_block(insn) or nxt in leaders or not _valid(code, nxt):
                block.successors = _successors(code, pc)
                break
            pc = nxt
        blocks[start] = block
        todo.extend(t for t in block.successors if _valid(code, t))
    return blocks


# --- instruction translation ----------------------------------------------------------------------

def _reg32(reg: int, narrow: set[int]) -> str:
    """A register's low half as an expression (no mask needed if it is known to be narrow)."""
    return f"r{reg}" if reg in narrow else f"(r{reg} & {U32})"


def _operand(insn: isa.Instruction, bits: int, narrow: set[int]) -> str:
    if insn.opcode & isa.X:
        return f"r{insn.src}" if bits == 64 else _reg32(insn.src, narrow)
    return str(insn.imm & ((1 << bits) - 1))


def _narrow_after_alu(insn: isa.Instruction, narrow: set[int]) -> bool:
    """Whether the ALU instruction leaves a value below 2**32 in dst (masks can be skipped)."""
    op = insn.opcode & 0xF0
    if insn.cls == isa.ALU:
        if insn.opcode == isa.ALU | isa.K | isa.END and insn.imm == 64:
            return insn.dst in narrow           # le64: no change
        if op == isa.END and insn.imm == 64:
            return False                        # be64
        return True                             # every 32-bit result is zero-extended
    x = insn.opcode & isa.X
    if op == isa.END:
        return insn.imm != 64
    if op == isa.MOV:
        return (insn.src in narrow and not insn.off) if x else insn.imm >= 0
    if op == isa.AND:
        return (insn.src in narrow or insn.dst in narrow) if x else insn.imm >= 0
    if op == isa.RSH and not x:
        return insn.imm & 63 >= 32 or insn.dst in narrow
    if op in (isa.DIV, isa.MOD) and not insn.off:
        return insn.dst in narrow
    return False


def _alu(insn: isa.Instruction, narrow: set[int]) -> list[str]:
    lines = _alu_lines(insn, narrow)
    if _narrow_after_alu(insn, narrow):
        narrow.add(insn.dst)
    else:
        narrow.discard(insn.dst)
    return lines


def _alu_lines(insn: isa.Instruction, narrow: set[int]) -> list[str]:
    bits = 64 if insn.cls == isa.ALU64 else 32
    mask = M if bits == 64 else U32
    d = f"r{insn.dst}"
    dv = d if bits == 64 else _reg32(insn.dst, narrow)
    op = insn.opcode & 0xF0
    s = _operand(insn, bits, narrow)
    const = not insn.opcode & isa.X
    if op == isa.END:
        width = insn.imm
        if insn.opcode == isa.ALU | isa.K | isa.END:       # le: truncate
            return [] if width == 64 else [f"{d} &= {hex((1 << width) - 1)}"]
        if width == 16:
            return [f"{d} = (({d} & 0xFF) << 8) | (({d} >> 8) & 0xFF)"]
        return [f"{d} = int.from_bytes(({d} & {hex((1 << width) - 1)}).to_bytes({width // 8}, "
                f"'little'), 'big')"]
    if op == isa.NEG:
        return [f"{d} = -{d} & {mask}"]
    if op == isa.MOV:
        if insn.opcode & isa.X and insn.off:
            w = insn.off
            return [f"{d} = (((r{insn.src} & {hex((1 << w) - 1)}) ^ {hex(1 << (w - 1))}) - "
                    f"{hex(1 << (w - 1))}) & {mask}"]
        return [f"{d} = {s}"]
    simple = {isa.ADD: "+", isa.SUB: "-", isa.MUL: "*"}
    if op in simple:
        return [f"{d} = ({dv} {simple[op]} {s}) & {mask}"]
    bitwise = {isa.OR: "|", isa.AND: "&", isa.XOR: "^"}
    if op in bitwise:
        return [f"{d} = {dv} {bitwise[op]} {s}"]
    if op == isa.LSH:
        sh = str((insn.imm & (bits - 1))) if const else f"(r{insn.src} & {bits - 1})"
        return [f"{d} = ({dv} << {sh}) & {mask}"]
    if op == isa.RSH:
        sh = str((insn.imm & (bits - 1))) if const else f"(r{insn.src} & {bits - 1})"
        return [f"{d} = {dv} >> {sh}"]
    if op == isa.ARSH:
        sh = str((insn.imm & (bits - 1))) if const else f"(r{insn.src} & {bits - 1})"
        sign = hex(1 << (bits - 1))
        return [f"{d} = ((({dv}) ^ {sign}) - {sign}) >> {sh} & {mask}"]
    if op in (isa.DIV, isa.MOD) and insn.off == 1:
        fn = "SDIV" if op == isa.DIV else "SMOD"
        return [f"{d} = {fn}({dv}, {s}, {bits})"]
    if op == isa.DIV:
        if const:
            return [f"{d} = {dv} // {s}" if int(s) else f"{d} = 0"]
        return [f"_b = {s}", f"{d} = {dv} // _b if _b else 0"]
    if op == isa.MOD:
        if const:
            return [f"{d} = {dv} % {s}" if int(s) else f"{d} = {dv}"]
        return [f"_b = {s}", f"{d} = {dv} % _b if _b else {dv}"]
    raise AssertionError(f"unhandled ALU opcode {insn.opcode:#x}")


def _condition(insn: isa.Instruction, narrow: set[int]) -> str:
    bits = 64 if insn.cls == isa.JMP else 32
    a = f"r{insn.dst}" if bits == 64 else _reg32(insn.dst, narrow)
    b = _operand(insn, bits, narrow)
    op = insn.opcode & 0xF0
    if op == isa.JSET:
        return f"{a} & {b}"
    if op in _UNSIGNED_CMP:
        return f"{a} {_UNSIGNED_CMP[op]} {b}"
    sign = S64 if bits == 64 else S32
    rhs = hex(int(b) ^ sign) if not insn.opcode & isa.X else f"({b} ^ {hex(sign)})"
    return f"({a} ^ {hex(sign)}) {_SIGNED_CMP[op]} {rhs}"


def _address(reg: int, off: int) -> str:
    if off == 0:
        return f"r{reg}"
    return f"(r{reg} + {off}) & {M}"


def _in_frame(reg: int, off: int, size: int) -> bool:
    return reg == isa.FRAME_POINTER and -isa.STACK_SIZE <= off and off + size <= 0


def _memory(insn: isa.Instruction, pc: int) -> list[str]:
    size = isa.SIZE_BYTES[insn.opcode & 0x18]
    cls = insn.cls
    mode = insn.opcode & 0xE0
    if cls == isa.LDX:
        signed = mode == isa.MEMSX
        if _in_frame(insn.src, insn.off, size):
            fn = f"{'S' if signed else 'U'}{size}"
            tail = f" & {M}" if signed else ""
            return [f"r{insn.dst} = {fn}(stk, {isa.STACK_SIZE + insn.off})[0]{tail}"]
        fn = f"{'LDS' if signed else 'LD'}{size}"
        return [f"r{insn.dst} = {fn}({_address(insn.src, insn.off)}, {pc})"]
    if cls == isa.ST:
        value = str(insn.imm & ((1 << (8 * size)) - 1))
    elif mode == isa.ATOMIC:
        addr = _address(insn.dst, insn.off)
        if insn.imm == isa.ATOMIC_CMPXCHG:
            return [f"r0 = CMPXCHG({addr}, {size}, r0, r{insn.src}, {pc})"]
        call = f"ATOMIC({addr}, {size}, {insn.imm & ~isa.ATOMIC_FETCH}, r{insn.src}, {pc})"
        if insn.imm & isa.ATOMIC_FETCH:
            return [f"r{insn.src} = {call}"]
        return [call]
    else:
        value = f"r{insn.src}" if size == 8 else f"r{insn.src} & {hex((1 << (8 * size)) - 1)}"
    if _in_frame(insn.dst, insn.off, size):
        return [f"P{size}(stk, {isa.STACK_SIZE + insn.off}, {value})"]
    return [f"ST{size}({_address(insn.dst, insn.off)}, {value}, {pc})"]


_PACKET_LOADS = {1: "PKT[{}]", 2: "BE2(PKT, {})[0]", 4: "BE4(PKT, {})[0]"}


def _packet(insn: isa.Instruction) -> list[str]:
    """Legacy packet loads, bounds-checked inline against the current input (PKT, PLEN)."""
    size = isa.SIZE_BYTES[insn.opcode & 0x18]
    load = _PACKET_LOADS[size]
    if insn.opcode & 0xE0 == isa.ABS:
        if insn.imm < 0:
            return ["r0 = LDFAIL()"]
        return [f"r0 = {load.format(insn.imm)} if {insn.imm + size} <= PLEN else LDFAIL()"]
    return [f"_b = (((r{insn.src} + {insn.imm}) & {U32}) ^ {hex(S32)}) - {hex(S32)}",
            f"r0 = {load.format('_b')} if 0 <= _b <= PLEN - {size} else LDFAIL()"]


def translate_insn(insn: isa.Instruction, pc: int, narrow: set[int] | None = None) -> list[str]:
    """Python statements for one non-branching instruction.

    ``narrow`` is the set of registers known (within the current block) to hold a value below
    2**32; it lets 32-bit operations skip masking their operands, and is updated.
    """
    if narrow is None:
        narrow = set()
    cls = insn.cls
    if cls in (isa.ALU, isa.ALU64):
        return _alu(insn, narrow)
    if insn.opcode == isa.LDDW:
        if insn.src == isa.PSEUDO_IMM64:
            _set(narrow, insn.dst, insn.imm64 < 1 << 32)
            return [f"r{insn.dst} = {insn.imm64}"]
        narrow.discard(insn.dst)
        return [f"r{insn.dst} = LDDW[{pc}]"]
    if cls == isa.LD:
        narrow.add(0)
        return _packet(insn)
    size = isa.SIZE_BYTES[insn.opcode & 0x18]
    if cls == isa.LDX:
        _set(narrow, insn.dst, size <= 4 and insn.opcode & 0xE0 != isa.MEMSX)
    elif cls == isa.STX and insn.opcode & 0xE0 == isa.ATOMIC:
        if insn.imm == isa.ATOMIC_CMPXCHG:
            _set(narrow, 0, size == 4)
        elif insn.imm & isa.ATOMIC_FETCH:
            _set(narrow, insn.src, size == 4)
    elif cls == isa.STX and size == 4 and insn.src in narrow:
        return [line.replace(f"r{insn.src} & 0xffffffff", f"r{insn.src}")
                for line in _memory(insn, pc)]
    return _memory(insn, pc)


def _set(narrow: set[int], reg: int, is_narrow: bool) -> None:
    if is_narrow:
        narrow.add(reg)
    else:
        narrow.discard(reg)


# --- functions and the module -------------------------------------------------------------------

#: a loop region: the first and last block starts of a single-entry loop laid out contiguously
Span = tuple[int, int]


def _inside(span: Span | None, target: int) -> bool:
    return span is None or span[0] <= target <= span[1]


def _goto(code: list, target: int, start: int, ind: str, span: Span | None = None) -> list[str]:
    """Transfer to the block at ``target``: fall down the chain (forward), restart the
    dispatch (backward), or leave the loop region ``span`` (break)."""
    if not _valid(code, target):
        return [f"{ind}OUT({target})"]
    lines = [f"{ind}b = {target}"]
    if not _inside(span, target):
        lines.append(f"{ind}break")
    elif target <= start:
        lines.append(f"{ind}continue")
    return lines


def _block_source(code: list, block: Block, span: Span | None = None) -> list[str]:
    """Lines (indented relative to the ``if b == start:`` body) for one block."""
    start = block.start
    n = len(block.pcs)
    last_pc = block.pcs[-1]
    last = code[last_pc]
    header = [f"cnt += {n}", f"if cnt > BUDGET: STEP({start}, locals(), {n})"]
    body: list[str] = []
    narrow: set[int] = set()     # nothing is known on entry (any predecessor may jump here)
    for pc in block.pcs[:-1]:
        body += translate_insn(code[pc], pc, narrow)
    fall = last_pc + last.slots
    op = last.opcode & 0xF0
    is_jump = last.cls in (isa.JMP, isa.JMP32)
    if is_jump and op not in (isa.CALL, isa.EXIT) and last.jump_target(last_pc) == start:
        # a block that jumps to itself: an inner loop (left only by a budget overrun if the
        # jump is unconditional)
        loop = ["while True:"] + ["    " + x for x in header + body]
        if op == isa.JA:
            return loop
        loop.append(f"    if not ({_condition(last, narrow)}): break")
        return loop + _goto(code, fall, start, "", span)
    lines = header + body
    if not is_jump:
        lines += translate_insn(last, last_pc, narrow)
        return lines + _goto(code, fall, start, "", span)
    if op == isa.EXIT:
        return lines + ["return r0, cnt"]
    if op == isa.JA:
        return lines + _goto(code, last.jump_target(last_pc), start, "", span)
    if op == isa.CALL:
        if last.opcode & isa.X:
            lines.append(f"r0, cnt = CALLX(r{last.dst}, {last_pc}, r1, r2, r3, r4, r5, cnt, "
                         "depth)")
        elif last.src == isa.CALL_LOCAL:
            target = last_pc + 1 + last.imm
            lines.append(f"if depth >= {isa.MAX_CALL_DEPTH - 1}: DEEP({last_pc})")
            lines.append(f"r0, cnt = F{target}(r1, r2, r3, r4, r5, cnt, depth + 1)")
        else:
            key = last.imm if last.src != isa.CALL_KFUNC else KFUNC_KEY | last.imm & isa.U32
            lines.append(f"r0, cnt = HELPER({key}, {last_pc}, r1, r2, r3, r4, r5, cnt, "
                         "depth)")
        return lines + _goto(code, fall, start, "", span)
    target = last.jump_target(last_pc)
    cond = _condition(last, narrow)
    if _valid(code, target) and target > start and _valid(code, fall) and \
            _inside(span, target) and _inside(span, fall):
        return lines + [f"b = {target} if {cond} else {fall}"]
    lines.append(f"if {cond}:")
    lines += _goto(code, target, start, "    ", span)
    return lines + _goto(code, fall, start, "", span)


def function_source(code: list, entry: int, leaders: set[int]) -> list[str]:
    blocks = function_blocks(code, entry, leaders)
    spans = loop_spans(blocks, entry)
    inside = {s for lo, hi in spans for s in blocks if lo <= s <= hi}
    items = sorted([(s, s) for s in blocks if s not in inside] + spans)
    out = [f"def F{entry}(r1, r2, r3, r4, r5, cnt, depth):",
           "    r0 = r6 = r7 = r8 = r9 = _b = 0",
           "    r10 = FP[depth]",
           "    stk = STK[depth]",
           f"    b = {entry}",
           "    while True:"]
    out += _dispatch(code, blocks, items, "        ")
    # every block ends in a transfer; reaching here means b named no block (cannot happen)
    out.append("        OUT(b)")
    return out


def loop_spans(blocks: dict[int, Block], entry: int) -> list[Span]:
    """Loops whose blocks are contiguous in the layout and entered only at their first block
    (what compilers emit for bounded loops). Each becomes an inner ``while`` whose back edges
    dispatch among the loop's own blocks only."""
    spans: list[Span] = []
    for start, block in blocks.items():
        for target in block.successors:
            if target in blocks and target < start:
                spans.append((target, start))
    spans.sort()
    merged: list[Span] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    single_entry = []
    for lo, hi in merged:
        if lo < entry <= hi:
            continue
        if all(not lo < t <= hi for s, blk in blocks.items() if not lo <= s <= hi
               for t in blk.successors):
            single_entry.append((lo, hi))
    return single_entry


def _dispatch(code: list, blocks: dict[int, Block], items: list[Span], ind: str,
              span: Span | None = None) -> list[str]:
    """Blocks (and loop regions) in order, under a binary tree of ``if b <= last`` guards with
    up to CHUNK items per leaf: falling through costs one test, reaching any block O(log n)."""
    out: list[str] = []
    if len(items) <= CHUNK:
        for lo, hi in items:
            out.append(f"{ind}if b == {lo}:")
            if lo == hi:
                out += [f"{ind}    {line}" for line in _block_source(code, blocks[lo], span)]
                continue
            inner = [(s, s) for s in sorted(blocks) if lo <= s <= hi]
            out.append(f"{ind}    while True:")
            out += _dispatch(code, blocks, inner, ind + "        ", (lo, hi))
            out.append(f"{ind}    if b < {lo}:")
            out.append(f"{ind}        continue")
        return out
    half = (len(items) + 1) // 2
    for group in (items[:half], items[half:]):
        out.append(f"{ind}if b <= {group[-1][1]}:")
        out += _dispatch(code, blocks, group, ind + "    ", span)
    return out


def program_source(code: list, entries: list[int]) -> str:
    leaders = find_leaders(code, entries)
    lines: list[str] = []
    for entry in entries:
        lines += function_source(code, entry, leaders)
        lines.append("")
    return "\n".join(lines) + "\n"


_CACHE: "OrderedDict[bytes, Any]" = OrderedDict()
_CACHE_SIZE = 64


def compiled(code: list, entries: list[int], key: bytes) -> Any:
    """The compiled module code for a program (cached by bytecode)."""
    found = _CACHE.get(key)
    if found is not None:
        _CACHE.move_to_end(key)
        return found
    source = program_source(code, entries)
    obj = compile(source, "<pybpf-translated>", "exec")
    _CACHE[key] = obj
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return obj


# --- binding to an interpreter ------------------------------------------------------------------

def _memory_functions(vm: "Interpreter") -> dict[str, Callable]:
    find = vm.memory.find
    funcs: dict[str, Callable] = {}

    caches: list[Callable[[Any], None]] = []

    def loader(size: int, signed: bool) -> Callable[[int, int], int]:
        unpack = struct.Struct("<" + (_STRUCT_CODES[size].lower() if signed
                                      else _STRUCT_CODES[size])).unpack_from
        # the last region hit, kept in closure cells: one subtraction and compare per access
        base, limit, view, cached = 0, -1, None, None

        def load(addr: int, pc: int) -> int:
            nonlocal base, limit, view, cached
            off = addr - base
            if 0 <= off <= limit:
                return unpack(view, off)[0] & 0xFFFFFFFFFFFFFFFF
            try:
                region, off = find(addr, size, False)
            except VMError as exc:
                raise VMError(exc.message, pc=pc, address=addr) from None
            base, limit, view, cached = region.address, region.size - size, region.view, region
            return unpack(view, off)[0] & 0xFFFFFFFFFFFFFFFF

        def forget(region: Any) -> None:
            nonlocal limit
            if region is cached:
                limit = -1

        caches.append(forget)
        return load

    def storer(size: int) -> Callable[[int, int, int], None]:
        pack = struct.Struct("<" + _STRUCT_CODES[size]).pack_into
        base, limit, view, cached = 0, -1, None, None

        def store(addr: int, value: int, pc: int) -> None:
            nonlocal base, limit, view, cached
            off = addr - base
            if 0 <= off <= limit:
                pack(view, off, value)
                return
            try:
                region, off = find(addr, size, True)
            except VMError as exc:
                raise VMError(exc.message, pc=pc, address=addr) from None
            base, limit, view, cached = region.address, region.size - size, region.view, region
            pack(view, off, value)

        def forget(region: Any) -> None:
            nonlocal limit
            if region is cached:
                limit = -1

        caches.append(forget)
        return store

    for size in (1, 2, 4, 8):
        funcs[f"LD{size}"] = loader(size, False)
        funcs[f"LDS{size}"] = loader(size, True)
        funcs[f"ST{size}"] = storer(size)
        funcs[f"U{size}"] = struct.Struct("<" + _STRUCT_CODES[size]).unpack_from
        funcs[f"S{size}"] = struct.Struct("<" + _STRUCT_CODES[size].lower()).unpack_from
        funcs[f"P{size}"] = struct.Struct("<" + _STRUCT_CODES[size]).pack_into

    def atomic(addr: int, size: int, op: int, value: int, pc: int) -> int:
        mask = (1 << (8 * size)) - 1
        old = vm.load(addr, size, pc, write=True)
        vm.store(addr, size, sem.ATOMIC_UPDATE[op](old, value & mask), pc)
        return old

    def cmpxchg(addr: int, size: int, r0: int, value: int, pc: int) -> int:
        old = vm.load(addr, size, pc, write=True)
        if old == r0 & ((1 << (8 * size)) - 1):
            vm.store(addr, size, value, pc)
        return old

    funcs["ATOMIC"] = atomic
    funcs["CMPXCHG"] = cmpxchg

    def forget(region: Any) -> None:
        for callback in caches:
            callback(region)

    vm.memory.on_remove.append(forget)
    return funcs


def bind(vm: "Interpreter") -> dict[str, Any]:
    """Instantiate the translated program for ``vm``: the namespace holding ``F0`` (main),
    every other subprogram and the per-run globals ``PKT`` / ``PLEN`` (the input data)."""
    key = vm.program.bytecode()
    code_obj = compiled(vm.code, vm.entries, key)
    namespace: dict[str, Any] = {"__builtins__": __builtins__}
    namespace.update(_memory_functions(vm))

    def step(pc: int, frame: dict[str, int], n: int) -> None:
        # the block at pc (n instructions) would overrun the budget: re-run it one
        # instruction at a time from the state at its start (the translated function's locals)
        vm.step_from(pc, [frame[f"r{i}"] for i in range(10)], frame["depth"], frame["cnt"] - n)

    def out(pc: int) -> None:
        raise VMError("execution left the program" if not 0 <= pc < len(vm.code)
                      else "execution entered the middle of a 64-bit load", pc=pc)

    def ldfail() -> int:
        from .interpreter import ProgramExit

        raise ProgramExit(0)

    def deep(pc: int) -> None:
        raise VMError(f"call depth limit of {isa.MAX_CALL_DEPTH} frames exceeded", pc=pc)

    def callx(value: int, pc: int, r1: int, r2: int, r3: int, r4: int, r5: int, cnt: int,
              depth: int) -> tuple[int, int]:
        kind, target = vm.resolve_callx(value, pc)
        if kind == "func":
            if depth >= isa.MAX_CALL_DEPTH - 1:
                deep(pc)
            return namespace[f"F{target}"](r1, r2, r3, r4, r5, cnt, depth + 1)
        return vm.call_helper_counted(target, pc, r1, r2, r3, r4, r5, cnt, depth)

    namespace.update(
        BUDGET=vm.budget, STEP=step, OUT=out, DEEP=deep, CALLX=callx,
        HELPER=vm.call_helper_counted, LDDW=vm.lddw_values, LDFAIL=ldfail, PKT=b"", PLEN=0,
        BE2=struct.Struct(">H").unpack_from, BE4=struct.Struct(">I").unpack_from,
        FP=vm.frame_pointers, STK=[r.view for r in vm.stacks],
        SDIV=sem.BINARY[(isa.DIV, 1)], SMOD=sem.BINARY[(isa.MOD, 1)],
    )
    exec(code_obj, namespace)
    return namespace
