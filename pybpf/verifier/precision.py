"""Precision tracking: which scalars the verdict depends on, found by backtracking.

Follows the behaviour of the kernel's ``mark_chain_precision``/``backtrack_insn`` (Linux 6.18,
``kernel/bpf/verifier.c``), written from its documented behaviour. A scalar is *precise* when
its exact range matters: it decided a branch, was added to a pointer, sized a helper's memory,
keyed an array lookup, bounded ``bpf_loop`` or is a callback's return value. When the walk
needs that, the registers and stack slots the value came from are found by walking the
instructions of the current path backwards, segment by segment (each state keeps the
instructions it executed since its parent checkpoint in ``trace``), and the matching scalars
of every checkpoint on the way are marked ``precise``. State pruning then compares only precise
scalars by range; an imprecise one matches any scalar (``regsafe``), which keeps loops with
counters that nothing depends on tractable.

Trace entries are the instruction index, or ``(pc, stack, linked)`` where ``stack`` is the
``(frameno, spi)`` of a spill or fill at a fixed stack offset (the kernel's
INSN_F_STACK_ACCESS) and ``linked`` the registers sharing a scalar id at a conditional jump
(``(frameno, regno)``, or ``(frameno, -1 - spi)`` for a spilled one). Whenever backtracking
meets something it cannot follow, every scalar of the path is marked precise, as the kernel's
``mark_all_scalars_precise`` fallback does: safe, only slower.
"""

from __future__ import annotations

from .. import isa
from . import state as st
from .callbacks import CALLBACK_HELPER_IDS

MAX_FRAMES = 9
_ARGS = 0x3E          # r1-r5


class Unsupported(Exception):
    """Backtracking met an instruction it does not follow."""


class Backtrack:
    """Registers and stack slots still needing precision, per frame (``backtrack_state``)."""

    __slots__ = ("frame", "regs", "stack")

    def __init__(self, frame: int):
        self.frame = frame
        self.regs = [0] * MAX_FRAMES
        self.stack = [0] * MAX_FRAMES

    def empty(self) -> bool:
        return not any(self.regs) and not any(self.stack)


def _pc_of(e) -> int:
    return e if e.__class__ is int else e[0]


def _reg_mask_text(mask: int) -> str:
    return ",".join(f"r{i}" for i in range(11) if mask >> i & 1)


def _stack_mask_text(mask: int) -> str:
    return ",".join(str(-(i + 1) * 8) for i in range(64) if mask >> i & 1)


def _calls_callback(insn) -> bool:
    return insn is not None and insn.opcode == isa.JMP | isa.CALL and \
        insn.src == isa.CALL_HELPER and insn.imm in CALLBACK_HELPER_IDS


def _sync_linked(bt: Backtrack, linked) -> None:
    """``bt_sync_linked_regs``: one linked register precise makes all of them precise."""
    if not linked:
        return
    hit = False
    for fr, r in linked:
        if (r >= 0 and bt.regs[fr] >> r & 1) or (r < 0 and bt.stack[fr] >> (-1 - r) & 1):
            hit = True
            break
    if not hit:
        return
    for fr, r in linked:
        if r >= 0:
            bt.regs[fr] |= 1 << r
        else:
            bt.stack[fr] |= 1 << (-1 - r)


def _backtrack_insn(env, pc: int, subseq: int, entry, bt: Backtrack) -> None:
    """``backtrack_insn``: move the precision requests from after ``pc`` to before it."""
    insn = env.layout.insns[pc]
    linked = entry[2] if entry.__class__ is tuple else None
    stack = entry[1] if entry.__class__ is tuple else None
    _sync_linked(bt, linked)
    cls = insn.cls
    op = insn.opcode & 0xF0
    d, s = insn.dst, insn.src
    f = bt.frame
    regs = bt.regs[f]
    if cls in (isa.ALU, isa.ALU64):
        if not regs >> d & 1:
            pass
        elif op in (isa.END, isa.NEG):
            pass
        elif op == isa.MOV:
            regs &= ~(1 << d)
            if insn.opcode & isa.X and s != isa.FRAME_POINTER:
                regs |= 1 << s
        elif insn.opcode & isa.X and s != isa.FRAME_POINTER:
            regs |= 1 << s
        bt.regs[f] = regs
    elif cls == isa.LDX:
        if regs >> d & 1:
            bt.regs[f] = regs & ~(1 << d)
            if stack is not None:
                bt.stack[stack[0]] |= 1 << stack[1]
    elif cls in (isa.STX, isa.ST):
        if cls == isa.STX and insn.opcode & 0xE0 == isa.ATOMIC:
            fetch = 1 if insn.imm == isa.ATOMIC_CMPXCHG else 1 << s
            if regs & ((1 << d) | (1 << s) | fetch) or stack is not None and \
                    bt.stack[stack[0]] >> stack[1] & 1:
                raise Unsupported("atomic")
        elif regs >> d & 1:
            raise Unsupported("store through a scalar")
        elif stack is not None and bt.stack[stack[0]] >> stack[1] & 1:
            bt.stack[stack[0]] &= ~(1 << stack[1])
            if cls == isa.STX:
                bt.regs[f] |= 1 << s
    elif cls in (isa.JMP, isa.JMP32):
        if op == isa.CALL:
            if insn.src == isa.CALL_LOCAL:
                # going back past the call into the caller: only arguments may be left
                if regs & ~_ARGS or bt.stack[f] or f == 0:
                    raise Unsupported("callee state left at its entry")
                bt.regs[f] = 0
                bt.regs[f - 1] |= regs & _ARGS
                bt.frame = f - 1
            elif insn.src == isa.CALL_HELPER and insn.imm in CALLBACK_HELPER_IDS and \
                    subseq != pc + 1 and subseq >= 0:
                # from a callback's first instruction back to the helper that called it
                if regs & ~_ARGS or bt.stack[f] or f == 0:
                    raise Unsupported("callback state left at its entry")
                bt.regs[f] = 0
                bt.frame = f - 1
            else:
                regs &= ~1
                if regs & _ARGS:
                    raise Unsupported("helper argument")
                bt.regs[f] = regs
        elif op == isa.EXIT:
            if subseq >= 0 and _calls_callback(env.layout.insns[subseq]):
                # back to a callback's call site: the caller's r1-r5 there are the helper's
                # arguments, set before the callback was entered
                regs &= ~_ARGS
            if regs & _ARGS:
                raise Unsupported("argument at exit")
            prev = env.layout.insns[subseq - 1] if subseq >= 1 else None
            r0 = bool(regs & 1) and prev is not None and prev.cls == isa.JMP and \
                prev.opcode & 0xF0 == isa.CALL and prev.src == isa.CALL_LOCAL
            bt.regs[f] = regs & ~1
            if f + 1 >= MAX_FRAMES:
                raise Unsupported("frames")
            bt.frame = f + 1
            bt.regs[f + 1] = 1 if r0 else 0
            bt.stack[f + 1] = 0
        elif op == isa.JA:
            pass
        elif insn.opcode & isa.X:
            if regs >> d & 1 or regs >> s & 1:
                bt.regs[f] = regs | (1 << d) | (1 << s)
    elif cls == isa.LD:
        if regs >> d & 1 or (insn.opcode != isa.LDDW and regs & 1):
            if insn.opcode != isa.LDDW:
                raise Unsupported("ld_abs")
            bt.regs[f] = regs & ~(1 << d)
    _sync_linked(bt, linked)


def _mark_in_parent(parent, bt: Backtrack) -> None:
    for fr in range(bt.frame, -1, -1):
        if fr >= len(parent.frames):
            raise Unsupported("frame mismatch")
        frame = parent.frames[fr]
        mask = bt.regs[fr]
        i = 0
        while mask >> i:
            if mask >> i & 1:
                r = frame.regs[i]
                if r.type != st.SCALAR or r.precise:
                    bt.regs[fr] &= ~(1 << i)
                else:
                    r.precise = True
            i += 1
        mask = bt.stack[fr]
        i = 0
        while mask >> i:
            if mask >> i & 1:
                slot = frame.stack.get(i)
                sp = slot.spilled if slot is not None and slot.types[7] == st.SPILL else None
                if sp is None or sp.type != st.SCALAR or sp.precise:
                    bt.stack[fr] &= ~(1 << i)
                else:
                    sp.precise = True
            i += 1


def mark_all_precise(state) -> bool:
    """``mark_all_scalars_precise``: the fallback, over the state and all its parents.
    Returns whether a mark was new."""
    changed = False
    s = state
    while s is not None:
        for f in s.frames:
            for r in f.regs:
                if r.type == st.SCALAR and not r.precise:
                    r.precise = changed = True
            for slot in f.stack.values():
                sp = slot.spilled
                if sp is not None and sp.type == st.SCALAR and not sp.precise:
                    sp.precise = changed = True
        s = s.parent
    return changed


def _log_state(env, state, fr: int) -> str:
    from .log import frame_text
    return frame_text(state, fr, env.log.maps)


# instruction kinds for the fast path of the backward walk (no stack, no frames)
_SKIP, _ALU_X, _MOV_X, _SET_K, _JMP_X, _SLOW = range(6)


def _kinds(env) -> list:
    """Per instruction slot: (kind, dst, src) for the fast path, computed once."""
    kinds = getattr(env, "_bt_kinds", None)
    if kinds is not None:
        return kinds
    kinds = []
    for insn in env.layout.insns:
        k = _SLOW
        if insn is not None:
            cls, op = insn.cls, insn.opcode & 0xF0
            x = insn.opcode & isa.X
            if cls in (isa.ALU, isa.ALU64):
                if op == isa.MOV:
                    k = _MOV_X if x else _SET_K
                elif op in (isa.END, isa.NEG) or not x:
                    k = _SKIP
                else:
                    k = _ALU_X
            elif cls in (isa.JMP, isa.JMP32) and op not in (isa.CALL, isa.EXIT):
                k = _JMP_X if x and op != isa.JA else _SKIP
            elif insn.opcode == isa.LDDW:
                k = _SET_K
        kinds.append((k, insn.dst if insn is not None else 0,
                       insn.src if insn is not None else 0))
    env._bt_kinds = kinds
    return kinds


def _walk_fast(kinds, entries, j: int, subseq: int, bt: Backtrack, stop: int = -1):
    """Walk back over plain register instructions without touching ``bt``'s other frames
    or the stack; stops at the first entry that needs the general rule. Returns the new
    (j, subseq) and whether every request is satisfied."""
    f = bt.frame
    regs = bt.regs[f]
    rest = any(bt.stack) or sum(bt.regs) != regs
    while j > stop:
        e = entries[j]
        if e.__class__ is not int:
            break
        k, d, s = kinds[e]
        if k == _SKIP:
            pass
        elif k == _ALU_X:
            if regs >> d & 1 and s != 10:
                regs |= 1 << s
        elif k == _MOV_X:
            if regs >> d & 1:
                regs &= ~(1 << d)
                if s != 10:
                    regs |= 1 << s
                elif not regs and not rest:
                    bt.regs[f] = 0
                    return j, e, True
        elif k == _SET_K:
            if regs >> d & 1:
                regs &= ~(1 << d)
                if not regs and not rest:
                    bt.regs[f] = 0
                    return j, e, True
        elif k == _JMP_X:
            if regs >> d & 1 or regs >> s & 1:
                regs |= (1 << d) | (1 << s)
        else:
            break
        subseq = e
        j -= 1
    bt.regs[f] = regs
    return j, subseq, False


def backtrack(env, state, bt: Backtrack, skip_last: bool) -> bool:
    """``__mark_chain_precision``: walk ``state``'s trace and its parents' backwards until
    every request in ``bt`` is satisfied. Returns whether a new mark was set anywhere."""
    if bt.empty():
        return False
    log = env.log if env.log.level >= 2 else None
    kinds = _kinds(env)
    changed = False
    s = state
    entries = s.trace
    j = len(entries) - 1
    subseq = -1
    if skip_last and j >= 0:
        subseq = _pc_of(entries[j])
        j -= 1
    # the same request from earlier in this segment was already walked back in full: a walk
    # that reaches its starting point with the same requests has nothing new to do
    memo = state.bt_memo if log is None else None
    stop = memo[0] if memo is not None and memo[0] <= j else -1
    start = (j, subseq, bt.frame, tuple(bt.regs), tuple(bt.stack))
    first = True
    last_idx = _pc_of(entries[-1]) if entries else -1
    try:
        while True:
            if log is not None:
                shown = -1 if first and skip_last else subseq
                log.line(f"mark_precise: frame{bt.frame}: last_idx {last_idx} first_idx "
                         f"{s.first_idx} subseq_idx {shown} ")
            while j >= 0:
                if first and j == stop:
                    if start[0] >= 0 and (j, subseq, bt.frame, tuple(bt.regs),
                                          tuple(bt.stack)) == memo:
                        state.bt_memo = start
                        return changed
                    stop = -1
                if log is None:
                    j, subseq, done = _walk_fast(kinds, entries, j, subseq, bt,
                                                 stop if first else -1)
                    if done:
                        if first:
                            state.bt_memo = start
                        return changed
                    if j < 0:
                        break
                    if first and j == stop:
                        continue
                e = entries[j]
                pc = _pc_of(e)
                if log is not None:
                    from .log import insn_text
                    log.line(f"mark_precise: frame{bt.frame}: regs="
                             f"{_reg_mask_text(bt.regs[bt.frame])} stack="
                             f"{_stack_mask_text(bt.stack[bt.frame])} before {pc}: "
                             f"{insn_text(env.layout.insns[pc], pc)}")
                _backtrack_insn(env, pc, subseq, e, bt)
                if bt.empty():
                    if first:
                        state.bt_memo = start
                    return changed
                subseq = pc
                j -= 1
            if first:
                first = False
                state.bt_memo = start
            parent = s.parent
            if parent is None:
                break
            before = [(bt.regs[i], bt.stack[i]) for i in range(bt.frame + 1)]
            _mark_in_parent(parent, bt)
            if any(bt.regs[i] or bt.stack[i] for i in range(bt.frame + 1)):
                changed = True
            if log is not None:
                for fr in range(bt.frame, -1, -1):
                    log.line(f"mark_precise: frame{fr}: parent state regs="
                             f"{_reg_mask_text(bt.regs[fr])} stack="
                             f"{_stack_mask_text(bt.stack[fr])}: {_log_state(env, parent, fr)}")
            del before
            if bt.empty():
                return changed
            s = parent
            entries = s.trace
            j = len(entries) - 1
            last_idx = _pc_of(entries[-1]) if entries else -1
    except Unsupported:
        if log is not None:
            log.line(f"mark_precise: frame{len(state.frames) - 1}: falling back to forcing "
                     f"all scalars precise")
        return mark_all_precise(state) or changed
    # requests left at the program's start: something was not followed
    return mark_all_precise(state) or changed


def mark_regs(env, state, regnos, skip_last: bool = True) -> None:
    """``mark_chain_precision`` for registers of the current frame."""
    if not env.privileged:
        return
    f = len(state.frames) - 1
    regs = state.frames[f].regs
    mask = 0
    for r in regnos:
        if r is not None and 0 <= r < 10 and regs[r].type == st.SCALAR:
            mask |= 1 << r
    if not mask:
        return
    if skip_last and env.log.level < 2 and _repeat_of_memo(env, state, f, mask):
        return
    bt = Backtrack(f)
    bt.regs[f] = mask
    backtrack(env, state, bt, skip_last)


def _repeat_of_memo(env, state, f: int, mask: int) -> bool:
    """The request was walked back in full from an earlier point of this segment and the
    instructions since then leave it unchanged: nothing new can be marked. The memo then
    moves to the current point (the common case of a loop's bound check)."""
    memo = state.bt_memo
    if memo is None:
        return False
    j0, _, frame0, regs0, stack0 = memo
    if frame0 != f or regs0[f] != mask or sum(regs0) != mask or any(stack0):
        return False
    entries = state.trace
    j = len(entries) - 2
    if j < j0:
        return False
    kinds = _kinds(env)
    for idx in range(j, j0, -1):
        e = entries[idx]
        if e.__class__ is not int:
            return False
        k, d, s = kinds[e]
        if k == _SKIP:
            continue
        if k == _SLOW or mask >> d & 1 or (k == _JMP_X and mask >> s & 1):
            return False
    last = entries[j + 1]
    state.bt_memo = (j, last if last.__class__ is int else last[0], frame0, regs0, stack0)
    return True


def mark_slot(env, state, frameno: int, spi: int, skip_last: bool = True) -> None:
    """``mark_chain_precision`` for one spilled scalar of frame ``frameno``."""
    if not env.privileged:
        return
    bt = Backtrack(len(state.frames) - 1)
    bt.stack[frameno] = 1 << spi
    backtrack(env, state, bt, skip_last)


def propagate(env, old, cur, live_masks) -> bool:
    """``propagate_precision``: ``cur`` was pruned by ``old``, so what ``old``'s future needed
    precise is needed on ``cur``'s path as well. ``live_masks``: registers compared, per
    frame."""
    bt = Backtrack(len(cur.frames) - 1)
    parts = []
    for fr, f in enumerate(old.frames):
        live = live_masks[fr]
        for i in range(10):
            r = f.regs[i]
            if r.type == st.SCALAR and r.precise and live >> i & 1:
                bt.regs[fr] |= 1 << i
                parts.append((fr, f"r{i}"))
        for spi, slot in f.stack.items():
            sp = slot.spilled
            if sp is not None and slot.types[7] == st.SPILL and sp.type == st.SCALAR and \
                    sp.precise:
                bt.stack[fr] |= 1 << spi
                parts.append((fr, f"fp{-(spi + 1) * 8}"))
    if bt.empty():
        return False
    if env.log.level >= 2:
        for fr in sorted({p[0] for p in parts}):
            env.log.line(f"frame {fr}: propagating " +
                         ",".join(name for f2, name in parts if f2 == fr))
    return backtrack(env, cur, bt, False)


def _regs_exact(a, b, idmap: dict) -> bool:
    if a.key()[:11] != b.key()[:11] or a.key()[12:] != b.key()[12:]:
        return False
    if not a.id and not b.id:
        return True
    if idmap.get(a.id, b.id) != b.id:
        return False
    idmap[a.id] = b.id
    return True


def _maybe_widen(old, cur, idmap: dict):
    if old.type != st.SCALAR or cur.type != st.SCALAR:
        return None
    if old.precise or cur.precise or _regs_exact(old, cur, idmap):
        return None
    fresh = st.RegState.scalar_unknown()
    fresh.origin = cur.origin
    return fresh


def widen_imprecise(old, cur) -> None:
    """``widen_imprecise_scalars``: when a callback comes back to its call site, imprecise
    scalars that changed since the previous visit become unknown, so a counter nothing
    depends on converges after two visits."""
    idmap: dict = {}
    for fr in range(len(old.frames) - 1, -1, -1):
        fo, fc = old.frames[fr], cur.frames[fr]
        for i in range(10):
            w = _maybe_widen(fo.regs[i], fc.regs[i], idmap)
            if w is not None:
                fc.regs[i] = w
        for spi, so in fo.stack.items():
            sc = fc.stack.get(spi)
            if sc is None or so.types[7] != st.SPILL or sc.types[7] != st.SPILL or \
                    so.spilled is None or sc.spilled is None:
                continue
            w = _maybe_widen(so.spilled, sc.spilled, idmap)
            if w is not None:
                sc.spilled = w
