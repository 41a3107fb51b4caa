"""Helpers that call back into the program: ``bpf_loop`` and ``bpf_for_each_map_elem``.

Follows the kernel's model (``push_callback_call`` and the ``set_*_callback_state``
functions of ``kernel/bpf/verifier.c``, Linux 6.7+): at the helper call, a copy of the state
with a new frame for the callback is queued as a branch to explore, while the current path
continues after the call. When the callback returns, its path goes back to the *call
instruction* (not past it), which queues the callback again; the walk stops when the state at
the call site is contained in one still being explored there (the callback can no longer
change anything) or, for ``bpf_loop``, when the number of visits reaches the largest possible
``nr_loops``. The callback's return value must lie in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import state as st
from .memory import Reject
from .state import FuncState, RegState, VerifierState

MAX_CALL_FRAMES = 8

#: map types whose kernel ops implement ``map_for_each_callback``
FOR_EACH_MAP_TYPES = frozenset({"hash", "percpu_hash", "lru_hash", "lru_percpu_hash",
                                "array", "percpu_array"})


def _loop_args(env, caller: FuncState, callee: FuncState, pc: int) -> None:
    """``set_loop_callback_state``: callback(u32 index, void *ctx)."""
    callee.regs[1] = RegState.scalar_unknown()
    callee.regs[2] = caller.regs[3].copy()


def _for_each_args(env, caller: FuncState, callee: FuncState, pc: int) -> None:
    """``map_set_for_each_callback_args``: callback(map, key, value, ctx)."""
    m = caller.regs[1].map
    if env.maps[m].type not in FOR_EACH_MAP_TYPES:
        raise Reject("callback function not allowed for map", "callback-map", pc,
                     map_type=env.maps[m].type)
    callee.regs[1] = caller.regs[1].copy()
    callee.regs[2] = RegState.pointer(st.MAP_KEY, map=m)
    callee.regs[3] = RegState.pointer(st.MAP_VALUE, map=m)
    callee.regs[4] = caller.regs[3].copy()


@dataclass(frozen=True)
class CallbackHelper:
    """How one callback-calling helper sets up its callback's frame."""

    set_args: Callable
    ret_range: tuple[int, int] = (0, 1)
    #: the argument register whose largest value bounds the number of callback visits
    #: (bpf_loop's nr_loops); None: visit until the state converges
    bound_reg: int | None = None


CALLBACK_HELPERS: dict[str, CallbackHelper] = {
    "loop": CallbackHelper(_loop_args, bound_reg=1),
    "for_each_map_elem": CallbackHelper(_for_each_args),
}
#: helper ids that call callbacks (prune points and forced checkpoints at their call sites)
CALLBACK_HELPER_IDS = frozenset({181, 164})


def push_callback(env, state: VerifierState, name: str, subprog_pc: int, pc: int) -> None:
    """Queue the callback's first instruction with a new frame (``push_callback_call``), when
    another visit is possible; ``env.pending_callbacks`` collects the queued states."""
    spec = CALLBACK_HELPERS[name]
    caller = state.cur
    if spec.bound_reg is not None:
        bound = caller.regs[spec.bound_reg]
        limit = bound.umax if bound.type == st.SCALAR else 0
        if caller.callback_depth >= limit:
            caller.callback_depth = 0
            return
    if len(state.frames) >= MAX_CALL_FRAMES:
        raise Reject(f"the call stack of {len(state.frames) + 1} frames is too deep",
                     "call-depth", pc)
    cb = state.copy()
    sub = env.layout.subprog_of[subprog_pc]
    callee = FuncState(len(cb.frames), sub, pc)
    spec.set_args(env, cb.cur, callee, pc)
    callee.regs[10] = RegState.pointer(st.STACK, frameno=callee.frameno)
    callee.in_callback = True
    cb.cur.callback_depth += 1
    cb.frames.append(callee)
    cb.cb_unroll += 1
    cb.history = (pc, subprog_pc, cb.history)
    caller.callback_depth = 0
    env.pending_callbacks.append((cb, subprog_pc, pc))


def callback_exit(env, state: VerifierState, pc: int) -> int:
    """A callback's ``exit``: check R0 against the range and go back to the call site."""
    r0 = state.cur.regs[0]
    if r0.type == st.NOT_INIT:
        raise Reject("R0 !read_ok", "uninit-return", pc, regno=0)
    if r0.type != st.SCALAR:
        raise Reject("R0 not a scalar value", "callback-return", pc)
    # the range check relies on R0's exact value
    from .precision import mark_regs
    mark_regs(env, state, (0,))
    callee = state.cur
    site = env.layout.insns[callee.callsite]
    from ..helpers.ids import NAMES_BY_ID
    lo, hi = CALLBACK_HELPERS[NAMES_BY_ID[site.imm]].ret_range
    if r0.smin < lo or r0.smax > hi:
        parts = []
        if r0.smin > -(1 << 63):
            parts.append(f" smin={r0.smin}")
        if r0.smax < (1 << 63) - 1:
            parts.append(f" smax={r0.smax}")
        has = "".join(parts) or " unknown scalar value"
        raise Reject(f"At callback return the register R0 has{has} should have been in "
                     f"[{lo}, {hi}]", "callback-return", pc, smin=r0.smin, smax=r0.smax)
    state.frames.pop()
    return callee.callsite
