"""Structural checks before the path walk, as the kernel's ``check_subprogs``/``check_cfg``.

Every instruction must be a known opcode with legal fields; jumps land inside their own
subprogram and never in the second slot of a 64-bit load; each subprogram ends with ``exit`` or
an unconditional jump; every instruction is reachable; calls nest at most 8 deep and use at most
256 subprograms. The result, a :class:`Layout`, also carries what the walk needs: instruction
per slot, subprogram of each slot, prune points and a static register liveness (registers that
may still be read later), which stands in for the kernel's read marks when comparing states.
Everything is iterative: hostile programs cannot exhaust Python's recursion limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import isa
from ..errors import DecodeError
from .callbacks import CALLBACK_HELPER_IDS
from .stacklive import stack_liveness

MAX_SUBPROGS = 256
#: ``may_goto`` (BPF_JMP | BPF_JCOND, src BPF_MAY_GOTO): a jump the runtime takes after a
#: budget of iterations; the verifier explores both edges (Linux 6.9+)
MAY_GOTO = 0xE5
#: opcodes LLVM knows that Linux 6.18's instruction table does not (``callx``, BPF_CALL | BPF_X):
#: refused before the walk as "unknown opcode 8d"
NOT_IN_KERNEL = frozenset({0x8D})
MAX_INSNS_PRIVILEGED = 1_000_000
MAX_INSNS_UNPRIVILEGED = 4096


class StructuralError(Exception):
    """A rejection found before the walk (message in the kernel's words, slot index)."""

    def __init__(self, message: str, pc: int | None = None, error_id: str = "structure"):
        super().__init__(message)
        self.message = message
        self.pc = pc
        self.error_id = error_id


@dataclass
class Layout:
    insns: list            # Instruction or None (second slot of lddw), by slot
    nslots: int
    subprog_starts: list[int]
    subprog_of: list[int]   # index into subprog_starts, by slot
    prune: list[bool]
    live_in: list[int]      # bitmask of registers possibly read from here on, by slot
    jump_targets: set[int] = field(default_factory=set)
    #: bitmask of the own frame's stack slots possibly read from here on, by slot
    #: (stacklive.py), computed on first use: most small programs never compare stacks
    _stack_live: list[int] | None = None

    @property
    def stack_live(self) -> list[int]:
        if self._stack_live is None:
            self._stack_live = stack_liveness(self.insns, self.subprog_starts, self.nslots,
                                              _call_uses, _successors)
        return self._stack_live

    def subprog_end(self, idx: int) -> int:
        return self.subprog_starts[idx + 1] if idx + 1 < len(self.subprog_starts) else self.nslots


def _successors(insn, pc: int) -> list[int]:
    cls = insn.cls
    nxt = pc + insn.slots
    if cls in (isa.JMP, isa.JMP32):
        op = insn.opcode & 0xF0
        if op == isa.EXIT:
            return []
        if op == isa.CALL:
            return [nxt]
        if op == isa.JA:
            return [insn.jump_target(pc)]
        return [nxt, insn.jump_target(pc)]
    return [nxt]


def _uses_defs(insn) -> tuple[int, int]:
    """Registers read and written by one instruction (bitmasks) for the liveness analysis."""
    cls, op, d, s = insn.cls, insn.opcode & 0xF0, insn.dst, insn.src
    bit = lambda r: 1 << r  # noqa: E731
    if cls in (isa.ALU, isa.ALU64):
        src = bit(s) if insn.opcode & isa.X and op != isa.END else 0
        if op == isa.MOV:
            return src, bit(d)
        return src | bit(d), bit(d)
    if cls == isa.LDX:
        return bit(s), bit(d)
    if cls == isa.ST:
        return bit(d), 0
    if cls == isa.STX:
        uses = bit(d) | bit(s)
        if insn.opcode & 0xE0 == isa.ATOMIC:
            if insn.imm == isa.ATOMIC_CMPXCHG:
                return uses | 1, 1
            if insn.imm & isa.ATOMIC_FETCH:
                return uses, bit(s)
        return uses, 0
    if cls == isa.LD:
        if insn.opcode == isa.LDDW:
            return 0, bit(d)
        # LD_ABS/LD_IND may end the program: every register counts as read (as the
        # kernel's compute_live_registers)
        return 0x3FF, 0x3F
    if cls in (isa.JMP, isa.JMP32):
        if op == isa.CALL:
            # a helper reads its arguments only, a subprogram r1-r5 (compute_live_registers)
            return _call_uses(insn), 0x3F
        if op == isa.EXIT:
            # r0 only: the caller's r6-r9 are its own frame's, compared at the call site
            return 1, 0
        if op == isa.JA or insn.opcode == MAY_GOTO:
            return 0, 0
        return bit(d) | (bit(s) if insn.opcode & isa.X else 0), 0
    return 0, 0


def _call_uses(insn) -> int:
    """Argument registers a call reads: a helper's by its prototype, else r1-r5."""
    if insn.src == isa.CALL_HELPER:
        from .calls import get_proto
        proto = get_proto(insn.imm)
        if proto is not None:
            return ((1 << (len(proto[2]) + 1)) - 1) & ~1
    if insn.src == isa.CALL_KFUNC:
        # the dynptr kfuncs read their prototype's arguments, as the kernel's liveness shows
        # (the iterator kfuncs keep r1-r5: docs/verifier-differences.md)
        from .kfuncs import lookup
        k = lookup(insn)
        if k is not None and k.role.startswith("dynptr_"):
            return ((1 << (k.nargs + 1)) - 1) & ~1
    return 0x3E


def _kernel_decode_error(exc: DecodeError, insn) -> str:
    name = isa.CLASS_NAMES.get(insn.cls, "?").upper()
    if insn.info is None:
        return f"unknown opcode {insn.opcode:02x}"
    if "reserved" in exc.message:
        return f"BPF_{name} uses reserved fields"
    return exc.message


def build_layout(insns: list, *, unprivileged: bool = False,
                 has_func_info: bool = False) -> Layout:
    """Check structure and return the slot layout; raise :class:`StructuralError`."""
    if not insns:
        raise StructuralError("empty program", None, "empty")
    slots: list = []
    for insn in insns:
        slots.append(insn)
        if insn.slots == 2:
            slots.append(None)
    n = len(slots)
    limit = MAX_INSNS_UNPRIVILEGED if unprivileged else MAX_INSNS_PRIVILEGED
    if n > limit:
        raise StructuralError(f"program has {n} instructions, more than the limit {limit}",
                              None, "too-large")
    # opcode validity first, over the whole program, as resolve_pseudo_ldimm64 does
    for pc, insn in enumerate(slots):
        if insn is None:
            continue
        if (insn.info is None and insn.opcode != MAY_GOTO) or insn.opcode in NOT_IN_KERNEL:
            raise StructuralError(f"unknown opcode {insn.opcode:02x}", pc, "unknown-opcode")
        if insn.opcode == isa.LDDW and insn.src not in (0, 1, 2, 3, 4, 5, 6):
            raise StructuralError("invalid bpf_ld_imm64 insn", pc, "bad-insn")
    # subprograms: main plus every bpf-to-bpf call target (and ld_imm64 func refs)
    starts = {0}
    for pc, insn in enumerate(slots):
        if insn is None:
            continue
        target = None
        if insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_LOCAL:
            if unprivileged:
                raise StructuralError("function calls to other bpf functions are allowed for "
                                      "CAP_BPF and CAP_SYS_ADMIN", pc, "privilege")
            target = pc + 1 + insn.imm
        elif insn.opcode == isa.LDDW and insn.src == isa.PSEUDO_FUNC:
            target = pc + 1 + insn.imm
        if target is not None:
            if not 0 <= target < n:
                raise StructuralError("call to invalid destination", pc, "bad-call")
            if slots[target] is None:
                raise StructuralError("call to invalid destination", pc, "bad-call")
            starts.add(target)
    starts_l = sorted(starts)
    if len(starts_l) > MAX_SUBPROGS:
        raise StructuralError("too many subprograms", None, "too-many-subprogs")
    subprog_of = [0] * n
    for i, s in enumerate(starts_l):
        end = starts_l[i + 1] if i + 1 < len(starts_l) else n
        for pc in range(s, end):
            subprog_of[pc] = i
            insn = slots[pc]
            if i and not has_func_info and insn is not None and \
                    insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_HELPER and \
                    insn.imm == 12:
                raise StructuralError("tail_call is not allowed in subprogs without BTF", pc,
                                      "tail-call-subprog")
    # jumps stay inside their subprogram; each subprogram ends with exit or ja
    targets: set[int] = set()
    for i, s in enumerate(starts_l):
        end = starts_l[i + 1] if i + 1 < len(starts_l) else n
        for pc in range(s, end):
            insn = slots[pc]
            if insn is None:
                continue
            if insn.is_jump:
                t = insn.jump_target(pc)
                if t < s or t >= end:
                    raise StructuralError(f"jump out of range from insn {pc} to {t}", pc,
                                          "jump-out-of-range")
                targets.add(t)
        last = end - 1
        last_insn = slots[last] if slots[last] is not None else slots[last - 1]
        if last_insn.opcode not in (isa.JMP | isa.EXIT, isa.JMP | isa.JA, isa.JMP32 | isa.JA):
            raise StructuralError("last insn is not an exit or jmp", last, "last-insn")
    for t in targets:
        if slots[t] is None:
            raise StructuralError(f"jump into the middle of ldimm64 insn {t - 1}", t,
                                  "jump-into-ldimm64")
    # reachability (iterative DFS), back-edges refused for unprivileged programs
    prune = [False] * n
    seen = [False] * n
    color = [0] * n
    for s in starts_l:
        if seen[s]:
            continue
        stack = [(s, 0)]
        seen[s] = True
        color[s] = 1
        while stack:
            pc, k = stack[-1]
            succ = _successors(slots[pc], pc)
            if k < len(succ):
                stack[-1] = (pc, k + 1)
                w = succ[k]
                if color[w] == 1 and unprivileged:
                    raise StructuralError(f"back-edge from insn {pc} to {w}", pc, "back-edge")
                if not seen[w]:
                    seen[w] = True
                    color[w] = 1
                    stack.append((w, 0))
            else:
                color[pc] = 2
                stack.pop()
    for pc in range(n):
        if slots[pc] is not None and not seen[pc]:
            raise StructuralError(f"unreachable insn {pc}", pc, "unreachable")
    for pc, insn in enumerate(slots):
        if insn is None:
            continue
        # the kernel's prune points: conditional jumps themselves, every jump target,
        # instructions after calls and bpf-to-bpf call sites
        if insn.is_jump:
            prune[insn.jump_target(pc)] = True
            if insn.opcode & 0xF0 != isa.JA:
                prune[pc] = True
        elif insn.opcode & 0xF7 == isa.JMP | isa.CALL:
            if pc + 1 < n:
                prune[pc + 1] = True
            if insn.src == isa.CALL_LOCAL or (insn.src == isa.CALL_HELPER and
                                              insn.imm in CALLBACK_HELPER_IDS):
                prune[pc] = True
            elif insn.src == isa.CALL_KFUNC:
                from .kfuncs import is_iter_next
                if is_iter_next(insn):
                    prune[pc] = True   # iterator next: a forced checkpoint, a loop head
    live_in = _liveness(slots, n)
    return Layout(slots, n, starts_l, subprog_of, prune, live_in, targets)


def _liveness(slots: list, n: int) -> list[int]:
    """Backward may-read analysis over registers (worklist, iterative)."""
    uses = [0] * n
    defs = [0] * n
    succs: list[list[int]] = [[] for _ in range(n)]
    preds: list[list[int]] = [[] for _ in range(n)]
    for pc, insn in enumerate(slots):
        if insn is None:
            continue
        uses[pc], defs[pc] = _uses_defs(insn)
        for w in _successors(insn, pc):
            if w < n:
                succs[pc].append(w)
                preds[w].append(pc)
    live = [0] * n
    work = [pc for pc in range(n) if slots[pc] is not None]
    in_work = [True] * n
    while work:
        pc = work.pop()
        in_work[pc] = False
        out = 0
        for w in succs[pc]:
            out |= live[w]
        new = uses[pc] | (out & ~defs[pc])
        if new != live[pc]:
            live[pc] = new
            for p in preds[pc]:
                if not in_work[p]:
                    in_work[p] = True
                    work.append(p)
    return live


def subprog_starts(insns: list) -> list[int]:
    """First slots of the subprograms (main, call targets, callback address loads), for the
    log of a program refused before its layout is complete."""
    starts = {0}
    pc = 0
    for insn in insns:
        if insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_LOCAL or \
                insn.opcode == isa.LDDW and insn.src == isa.PSEUDO_FUNC:
            starts.add(pc + 1 + insn.imm)
        pc += insn.slots
    return sorted(starts)


def loop_ids(layout: "Layout") -> list[int]:
    """Per slot, the number of the loop (non-trivial strongly connected component of the
    control flow graph) it belongs to, 0 for none; numbered in the order Tarjan's algorithm
    completes them, fall-through edges first, as the kernel's ``compute_scc`` (shown in the
    level-2 log's live-register table). Iterative: no recursion on hostile programs."""
    slots, n = layout.insns, layout.nslots
    index = [-1] * n
    low = [0] * n
    on_stack = [False] * n
    ids = [0] * n
    stack: list[int] = []
    counter = 0
    next_id = 1
    for root in range(n):
        if slots[root] is None or index[root] >= 0:
            continue
        work = [(root, 0)]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        while work:
            v, k = work[-1]
            succ = [w for w in _successors(slots[v], v) if w < n]
            if k < len(succ):
                work[-1] = (v, k + 1)
                w = succ[k]
                if index[w] < 0:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack[w] = True
                    work.append((w, 0))
                elif on_stack[w]:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
            if low[v] == index[v]:
                members = []
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    members.append(w)
                    if w == v:
                        break
                if len(members) > 1 or v in _successors(slots[v], v):
                    for w in members:
                        ids[w] = next_id
                    next_id += 1
    return ids

