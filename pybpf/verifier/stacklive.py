"""Static stack-slot liveness: which 8-byte slots of a frame may still be read.

Linux 6.18 ignores dead stack slots when it compares a state with a stored one
(``kernel/bpf/liveness.c`` computes per-instruction stack read and write masks and the live
slots from them). pybpf gets the same effect from a sound static analysis, computed once per
program, so in-progress states need no special care (liveness is a property of the program
point, not of a path):

1. Forward, per subprogram, each register is abstracted as ``NONFP`` (cannot point into this
   subprogram's own frame), ``fp + c`` (exactly the frame pointer plus a constant) or ``ANY``
   (may point into the frame at an offset the analysis cannot place). At entry only r10 points
   into the (fresh) frame. If the frame's address *escapes* -- stored to memory, or handed to a
   bpf-to-bpf callee or a callback -- every load and every callee's return value is ``ANY``,
   and every call reads the whole frame.
2. Backward, each instruction reads and kills slots: a load or atomic through ``fp + c`` reads
   the slots its bytes touch; a full aligned 8-byte store kills its slot; a narrower or
   unaligned store counts as a read (the rest of the slot survives it); any access through
   ``ANY`` reads every slot (variable-offset accesses included); a helper with an ``fp + c``
   argument reads every slot from ``c`` to the top of the frame (whatever the size of the
   memory it takes); a bpf-to-bpf call or callback helper given any pointer into the frame
   reads every slot; ``exit`` (and a successful tail call, which ends the program) reads none.

A slot not in ``live[pc]`` can be ignored at ``pc`` by the innermost frame; a caller's frame
uses the liveness at its call instruction, which includes what the callee may read through
pointer arguments.
"""

from __future__ import annotations

from .. import isa
from .callbacks import CALLBACK_HELPER_IDS

#: every slot of a 512-byte frame
ALL = (1 << (isa.STACK_SIZE // 8)) - 1
NONFP = None        # not a pointer into this frame
ANY = "any"         # maybe a pointer into this frame, offset unknown
_BOTTOM = "bottom"  # not reached yet


def _slots(lo: int, hi: int) -> int:
    """Slots touched by frame bytes [lo, hi) (negative offsets from fp)."""
    lo = max(lo, -isa.STACK_SIZE)
    hi = min(hi, 0)
    if lo >= hi:
        return 0
    first = (-hi) // 8          # slot of byte hi-1
    last = (-lo - 1) // 8       # slot of byte lo
    return ((1 << (last + 1)) - 1) & ~((1 << first) - 1)


def _join(a, b):
    if a == _BOTTOM:
        return b
    if b == _BOTTOM or a == b:
        return a
    return ANY


def _ptr(v) -> bool:
    return v is not NONFP


def _forward(slots: list, start: int, end: int, uses_of, succ_of, escaped: bool):
    """Register abstractions before each instruction of one subprogram, and whether the
    frame's address may escape into memory or a callee."""
    n = end
    into: list = [None] * n
    init = [NONFP] * 11
    init[10] = 0
    into[start] = init
    work = [start]
    escapes = False
    while work:
        pc = work.pop()
        regs = list(into[pc])
        insn = slots[pc]
        out, esc = _transfer(insn, regs, escaped, uses_of)
        escapes |= esc
        for w in succ_of(insn, pc):
            if not start <= w < end:
                continue
            old = into[w]
            if old is None:
                into[w] = out
                work.append(w)
                continue
            new = [_join(a, b) for a, b in zip(old, out)]
            if new != old:
                into[w] = new
                work.append(w)
    return into, escapes


def _transfer(insn, regs: list, escaped: bool, uses_of):
    cls, op = insn.cls, insn.opcode & 0xF0
    d, s = insn.dst, insn.src
    esc = False
    loaded = ANY if escaped else NONFP
    if cls in (isa.ALU, isa.ALU64):
        x = insn.opcode & isa.X and op != isa.END
        if op == isa.MOV:
            if not x:
                regs[d] = NONFP
            elif cls == isa.ALU64 and insn.off == 0:
                regs[d] = regs[s]
            else:
                regs[d] = ANY if _ptr(regs[s]) else NONFP
        elif cls == isa.ALU64 and not x and op in (isa.ADD, isa.SUB) and \
                isinstance(regs[d], int):
            regs[d] = regs[d] + (insn.imm if op == isa.ADD else -insn.imm)
        elif _ptr(regs[d]) or (x and _ptr(regs[s])):
            regs[d] = ANY
        else:
            regs[d] = NONFP
    elif cls == isa.LDX:
        regs[d] = loaded
    elif cls == isa.STX:
        if _ptr(regs[s]):
            esc = True
        if insn.opcode & 0xE0 == isa.ATOMIC:
            if insn.imm == isa.ATOMIC_CMPXCHG:
                regs[0] = loaded
            elif insn.imm & isa.ATOMIC_FETCH:
                regs[s] = loaded
    elif cls == isa.LD:
        if insn.opcode == isa.LDDW:
            regs[d] = NONFP
        else:
            for r in range(6):
                regs[r] = NONFP
    elif cls in (isa.JMP, isa.JMP32) and op == isa.CALL:
        local = insn.src == isa.CALL_LOCAL
        callback = insn.src == isa.CALL_HELPER and insn.imm in CALLBACK_HELPER_IDS
        if local or callback or insn.src not in (isa.CALL_HELPER, isa.CALL_LOCAL):
            if any(_ptr(regs[r]) for r in range(1, 6)):
                esc = True
        ret = loaded if local or insn.src not in (isa.CALL_HELPER, isa.CALL_LOCAL) else NONFP
        for r in range(1, 6):
            regs[r] = NONFP
        regs[0] = ret
    return regs, esc


def _reads_kills(insn, regs: list, escaped: bool, uses_of) -> tuple[int, int]:
    """Slots an instruction may read and slots it surely overwrites."""
    cls, op = insn.cls, insn.opcode & 0xF0
    mode = insn.opcode & 0xE0
    if cls == isa.LDX:
        base = regs[insn.src]
        if base is NONFP:
            return 0, 0
        if base == ANY:
            return ALL, 0
        lo = base + insn.off
        return _slots(lo, lo + isa.SIZE_BYTES[insn.opcode & 0x18]), 0
    if cls in (isa.ST, isa.STX):
        base = regs[insn.dst]
        if base is NONFP:
            return 0, 0
        if base == ANY:
            return ALL, 0
        lo = base + insn.off
        size = isa.SIZE_BYTES[insn.opcode & 0x18]
        touched = _slots(lo, lo + size)
        if cls == isa.STX and mode == isa.ATOMIC:
            return touched, 0
        if size == 8 and lo % 8 == 0 and -isa.STACK_SIZE <= lo < 0:
            return 0, touched
        return touched, 0
    if cls in (isa.JMP, isa.JMP32) and op == isa.CALL:
        helper = insn.src == isa.CALL_HELPER and insn.imm not in CALLBACK_HELPER_IDS
        if not helper:
            if escaped or any(_ptr(regs[r]) for r in range(1, 6)):
                return ALL, 0
            return 0, 0
        reads = 0
        args = uses_of(insn)
        for r in range(1, 6):
            if not args >> r & 1:
                continue
            v = regs[r]
            if v == ANY:
                return ALL, 0
            if v is not NONFP:
                reads |= _slots(v, 0)
        return reads, 0
    return 0, 0


def stack_liveness(slots: list, starts: list[int], nslots: int, uses_of, succ_of
                   ) -> list[int]:
    """Bitmask of the frame's slots (bit i: fp-8*(i+1)..fp-8*i-1) that may be read before
    being overwritten from each instruction on, for the subprogram holding it."""
    live = [ALL] * nslots
    bounds = list(starts) + [nslots]
    for k, start in enumerate(starts):
        end = bounds[k + 1]
        into, escaped = _forward(slots, start, end, uses_of, succ_of, False)
        if escaped:
            into, _ = _forward(slots, start, end, uses_of, succ_of, True)
        reads = [0] * end
        kills = [0] * end
        succs: dict[int, list[int]] = {}
        preds: dict[int, list[int]] = {}
        work = []
        for pc in range(start, end):
            insn = slots[pc]
            if insn is None or into[pc] is None:
                continue
            reads[pc], kills[pc] = _reads_kills(insn, into[pc], escaped, uses_of)
            ss = [w for w in succ_of(insn, pc) if start <= w < end]
            succs[pc] = ss
            for w in ss:
                preds.setdefault(w, []).append(pc)
            live[pc] = 0
            work.append(pc)
        in_work = set(work)
        while work:
            pc = work.pop()
            in_work.discard(pc)
            out = 0
            for w in succs[pc]:
                out |= live[w]
            new = reads[pc] | (out & ~kills[pc])
            if new != live[pc]:
                live[pc] = new
                for p in preds.get(pc, ()):
                    if p not in in_work:
                        in_work.add(p)
                        work.append(p)
    return live
