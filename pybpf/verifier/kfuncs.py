"""Calls to kernel functions (kfuncs, ``call`` with ``src=BPF_PSEUDO_KFUNC_CALL``).

The kfunc is named by its BTF id in ``imm`` (``off`` = 0: vmlinux, not a module BTF); pybpf
resolves the id against the running kernel's ``/sys/kernel/btf/vmlinux``. Modelled, following
Linux 6.18's ``check_kfunc_call`` (kernel/bpf/verifier.c, kernel/bpf/bpf_iter.c):

- the numeric open-coded iterator ``bpf_iter_num_new/next/destroy`` (libbpf's ``bpf_for``,
  ``bpf_repeat``): an 8-byte ``struct bpf_iter_num`` on the stack becomes an *iterator slot*
  (``st.ITER`` bytes, the kernel's STACK_ITER) holding an acquired reference, its state (active
  or drained) and its depth (iterations the path has entered); ``next`` forks the path as
  ``process_iter_next_call``: the current path sees the iterator drained and ``R0 = 0``, the
  queued one another iteration with ``R0`` a non-null pointer to the 4-byte int; the walk
  (check.py) stops a loop when an iteration's state is contained in one still being explored
  at the same ``next`` (RANGE_WITHIN), after widening imprecise scalars, so loops verify
  without unrolling;
- kfuncs with scalar or no arguments that the running kernel allows for every program type
  pybpf's verifier models (probed with BPF_PROG_LOAD): the region pairs
  ``bpf_rcu_read_lock``/``unlock`` (not nestable: "nested rcu read lock") and
  ``bpf_preempt_disable``/``enable`` (nestable), whose open regions forbid ``exit`` from the
  main program and ``LD_ABS``/``LD_IND``, and ``bpf_modify_return_test_tp(int)``, a scalar
  kfunc. Others (e.g. ``bpf_ktime_get_coarse_ns``, which this kernel refuses for those types)
  are refused as not supported.

Anything else is refused as not supported (pybpf never accepts what it cannot check).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import state as st
from .memory import Reject
from .state import RegState

#: iterator states (the kernel's BPF_ITER_STATE_ACTIVE / BPF_ITER_STATE_DRAINED)
ACTIVE, DRAINED = "active", "drained"
ITER_TYPE = "iter_num"
#: size of ``struct bpf_iter_num``
ITER_SIZE = 8


@dataclass(frozen=True)
class Kfunc:
    """What pybpf knows of one kfunc: its role and the scalar registers it takes."""

    name: str
    role: str            # "iter_new", "iter_next", "iter_destroy", a region role, "scalar"
    nargs: int
    ret: str = "void"    # "void" or "scalar" (for the roles without their own effect on R0)


#: the kfuncs modelled, by name (ids come from the kernel's BTF)
KFUNCS = {k.name: k for k in (
    Kfunc("bpf_iter_num_new", "iter_new", 3),
    Kfunc("bpf_iter_num_next", "iter_next", 1),
    Kfunc("bpf_iter_num_destroy", "iter_destroy", 1),
    Kfunc("bpf_rcu_read_lock", "rcu_lock", 0),
    Kfunc("bpf_rcu_read_unlock", "rcu_unlock", 0),
    Kfunc("bpf_preempt_disable", "preempt_disable", 0),
    Kfunc("bpf_preempt_enable", "preempt_enable", 0),
    Kfunc("bpf_modify_return_test_tp", "scalar", 1, "scalar"),
    Kfunc("bpf_dynptr_from_skb", "dynptr_from_pkt", 3, "scalar"),
    Kfunc("bpf_dynptr_from_xdp", "dynptr_from_pkt", 3, "scalar"),
    Kfunc("bpf_dynptr_slice", "dynptr_slice", 4),
    Kfunc("bpf_dynptr_slice_rdwr", "dynptr_slice", 4),
)}

#: the packet dynptr constructors: the dynptr kind and the program types pybpf lets call them
#: (compared with the kernel; others are refused as the kernel refuses them, or as not
#: supported where pybpf has not compared)
PACKET_DYNPTR = {"bpf_dynptr_from_skb": ("skb", frozenset({"sched_cls", "sched_act",
                                                           "socket_filter", "cgroup_skb"})),
                 "bpf_dynptr_from_xdp": ("xdp", frozenset({"xdp"}))}
#: program types in which the kernel refuses a packet dynptr constructor (probed)
PACKET_DYNPTR_REFUSED = {"bpf_dynptr_from_skb": frozenset({"xdp"}),
                         "bpf_dynptr_from_xdp": frozenset({"sched_cls", "sched_act"})}

#: kfuncs the kernel lets a program call while it holds a bpf_spin_lock (kfunc_spin_allowed:
#: of those modelled, the numeric iterator)
SPIN_ALLOWED = {"iter_new", "iter_next", "iter_destroy"}


def region_name(state) -> str | None:
    """The open kfunc region an ``exit`` or ``LD_ABS`` may not be inside, in the kernel's
    words (RCU is checked first, as check_resource_leak does)."""
    if state.rcu:
        return "bpf_rcu_read_lock"
    if state.preempt:
        return "bpf_preempt_disable"
    return None


def _scalar_args(state, first: int, last: int, pc: int) -> None:
    for i in range(first, last + 1):
        if state.cur.regs[i].type != st.SCALAR:
            raise Reject(f"R{i} is not a scalar", "kfunc-arg", pc, regno=i)

_names: dict[int, str] | None = None


def kfunc_name(btf_id: int) -> str | None:
    """The name of the kernel BTF FUNC ``btf_id`` (None when the kernel has no such FUNC)."""
    global _names
    if _names is None:
        _names = {}
    if btf_id in _names:
        return _names[btf_id]
    name = None
    try:
        from ..btf import load_vmlinux
        t = load_vmlinux()[btf_id]
        if type(t).__name__ == "Func":
            name = t.name
    except Exception:   # no kernel BTF here, or an id out of range
        name = None
    _names[btf_id] = name
    return name


def lookup(insn) -> Kfunc | None:
    """The modelled kfunc an instruction calls, if any."""
    if insn.off != 0:
        return None
    name = kfunc_name(insn.imm)
    return KFUNCS.get(name) if name else None


def is_iter_next(insn) -> bool:
    k = lookup(insn)
    return k is not None and k.role == "iter_next"


def _iter_slot(env, state, pc: int, k: Kfunc, uninit: bool):
    """The stack slot R1 points to; (frame, spi, slot) or a rejection in the kernel's words."""
    r1 = state.cur.regs[1]
    want = "uninitialized" if uninit else "an initialized"
    if r1.type != st.STACK:
        if r1.type == st.NOT_INIT:
            raise Reject("R1 !read_ok", "uninit-reg", pc, regno=1)
        raise Reject(f"arg#0 expected pointer to an iterator on stack", "kfunc-arg", pc)
    if r1.var_off.mask:
        raise Reject(f"R1 variable stack access prohibited for iter_num", "kfunc-arg", pc)
    off = r1.off + r1.var_off.value
    if off % 8:
        env.log.line(f"cannot pass in iter at an offset={off}")
        raise Reject(f"expected {want} {ITER_TYPE} as arg #0", "kfunc-arg", pc)
    if off < -st_stack_size() or off + ITER_SIZE > 0:
        raise Reject(f"invalid write to stack R1 off={off} size={ITER_SIZE}", "stack-oob", pc)
    frame = state.frames[r1.frameno]
    spi = (-off - 1) // 8
    slot = frame.stack.get(spi)
    is_iter = slot is not None and slot.types[0] == st.ITER and slot.spilled is not None
    if is_iter == uninit:
        raise Reject(f"expected {want} {ITER_TYPE} as arg #0", "kfunc-arg", pc)
    return frame, spi, slot, off


def st_stack_size() -> int:
    from .. import isa
    return isa.STACK_SIZE


def _clobber(env, state, pc: int) -> list:
    regs = state.cur.regs
    for i in range(1, 6):
        regs[i] = RegState()
    return regs


def check_kfunc_call(env, state, insn, pc: int):
    """Check one kfunc call and apply its effect. For ``bpf_iter_num_next`` returns the queued
    state of the next iteration (the caller pushes it); otherwise None."""
    k = lookup(insn)
    if k is None:
        name = kfunc_name(insn.imm) if insn.off == 0 else None
        what = f"kernel function {name}" if name else f"kernel function with BTF id {insn.imm}"
        raise Reject(f"calls to {what} (kfunc) are not supported by pybpf's verifier",
                     "unsupported", pc)
    if state.lock is not None and k.role not in SPIN_ALLOWED:
        raise Reject("function calls are not allowed while holding a lock", "call-in-lock", pc)
    regs = state.cur.regs
    queued = None
    region = _REGIONS.get(k.role)
    if region is not None:
        region(state, k, pc)
        regs = _clobber(env, state, pc)
        regs[0] = RegState()
    elif k.role == "scalar":
        _scalar_args(state, 1, k.nargs, pc)
        regs = _clobber(env, state, pc)
        regs[0] = RegState.scalar_unknown() if k.ret == "scalar" else RegState()
    elif k.role == "dynptr_from_pkt":
        _dynptr_from_pkt(env, state, k, pc)
        regs = _clobber(env, state, pc)
        regs[0] = RegState.scalar_unknown()
    elif k.role == "dynptr_slice":
        r0 = _dynptr_slice(env, state, k, pc)
        regs = _clobber(env, state, pc)
        regs[0] = r0
    elif k.role == "iter_new":
        frame, spi, slot, off = _iter_slot(env, state, pc, k, uninit=True)
        _scalar_args(state, 2, 3, pc)
        if off < -frame.allocated:
            frame.allocated = -off
        ref = env.new_id()
        state.refs[ref] = pc
        it = RegState(st.ITER_REG)
        it.ref_obj_id = ref
        it.iter_state = ACTIVE
        it.iter_depth = 0
        frame.stack[spi] = st.StackSlot(st.ITER * 8, it)
        regs = _clobber(env, state, pc)
        regs[0] = RegState.scalar_unknown()
    elif k.role == "iter_destroy":
        frame, spi, slot, off = _iter_slot(env, state, pc, k, uninit=False)
        ref = slot.spilled.ref_obj_id
        state.refs.pop(ref, None)
        del frame.stack[spi]
        # release_reference: pointers from next become unknown scalars (root) or unreadable
        for r in state.all_regs():
            if r.ref_obj_id == ref:
                fresh = RegState.scalar_unknown() if env.privileged else RegState()
                for f in RegState.__slots__:
                    setattr(r, f, getattr(fresh, f))
        regs = _clobber(env, state, pc)
        regs[0] = RegState()
    else:  # iter_next
        frame, spi, slot, off = _iter_slot(env, state, pc, k, uninit=False)
        regs = _clobber(env, state, pc)
        fr = state.frames.index(frame)
        it = slot.spilled
        if it.iter_state == ACTIVE:
            queued = state.copy()
            qit = queued.frames[fr].stack[spi].spilled
            qit.iter_depth = it.iter_depth + 1
            # read-only, tied to the iterator's reference (invalid once it is destroyed)
            r0 = RegState.pointer(st.RDONLY_MEM, mem_size=4)
            r0.id = env.new_id()
            r0.ref_obj_id = it.ref_obj_id
            queued.cur.regs[0] = r0
        # the current path: the iterator is drained, next returned NULL
        it.iter_state = DRAINED
        regs[0] = RegState.scalar_const(0)
    return queued


def _rcu_lock(state, k: Kfunc, pc: int) -> None:
    if state.rcu:
        raise Reject(f"nested rcu read lock (kernel function {k.name})", "kfunc-region", pc)
    state.rcu = True


def _rcu_unlock(state, k: Kfunc, pc: int) -> None:
    if not state.rcu:
        raise Reject(f"unmatched rcu read unlock (kernel function {k.name})", "kfunc-region",
                     pc)
    state.rcu = False


def _preempt_disable(state, k: Kfunc, pc: int) -> None:
    state.preempt += 1


def _preempt_enable(state, k: Kfunc, pc: int) -> None:
    if not state.preempt:
        raise Reject(f"unmatched attempt to enable preemption (kernel function {k.name})",
                     "kfunc-region", pc)
    state.preempt -= 1


_REGIONS = {"rcu_lock": _rcu_lock, "rcu_unlock": _rcu_unlock,
            "preempt_disable": _preempt_disable, "preempt_enable": _preempt_enable}


def iter_active(state, insn) -> bool:
    """At a ``next`` call: is the iterator R1 points to still active (is_state_visited's
    condition for a loop hit)?"""
    r1 = state.cur.regs[1]
    if r1.type != st.STACK or r1.var_off.mask:
        return False
    off = r1.off + r1.var_off.value
    if off % 8 or r1.frameno >= len(state.frames):
        return False
    slot = state.frames[r1.frameno].stack.get((-off - 1) // 8)
    return slot is not None and slot.types[0] == st.ITER and slot.spilled is not None and \
        slot.spilled.iter_state == ACTIVE


def _dynptr_stack_arg(state, regno: int, pc: int) -> RegState:
    r = state.cur.regs[regno]
    if r.type == st.NOT_INIT:
        raise Reject(f"R{regno} !read_ok", "uninit-reg", pc, regno=regno)
    if r.type != st.STACK:
        raise Reject(f"arg#{regno - 1} expected pointer to stack or const struct bpf_dynptr",
                     "kfunc-arg", pc, regno=regno)
    return r


def _dynptr_from_pkt(env, state, k: Kfunc, pc: int) -> None:
    """``bpf_dynptr_from_skb`` / ``bpf_dynptr_from_xdp``: R1 the unmodified context, R2 flags,
    R3 an uninitialised dynptr that becomes an skb/xdp dynptr (dynptr.py)."""
    from . import dynptr
    kind, allowed = PACKET_DYNPTR[k.name]
    ptype = env.ptype.name
    if ptype in PACKET_DYNPTR_REFUSED[k.name]:
        raise Reject(f"calling kernel function {k.name} is not allowed", "kfunc-not-allowed",
                     pc)
    if ptype not in allowed:
        raise Reject(f"kernel function {k.name} in a {ptype} program is not supported by "
                     "pybpf's verifier", "unsupported", pc)
    r1 = state.cur.regs[1]
    if r1.type == st.NOT_INIT:
        raise Reject("R1 !read_ok", "uninit-reg", pc, regno=1)
    if r1.type != st.CTX:
        raise Reject(f"arg#0 expected pointer to ctx, but got {r1.type}", "kfunc-arg", pc)
    if r1.off or r1.var_off.mask or r1.var_off.value:
        raise Reject(f"R1 is a modified context pointer: not supported by pybpf's verifier",
                     "unsupported", pc)
    _scalar_args(state, 2, 2, pc)
    r3 = _dynptr_stack_arg(state, 3, pc)
    dynptr.process_arg(env, state, r3, 3, {"uninit", kind}, pc, {})


def _dynptr_slice(env, state, k: Kfunc, pc: int) -> RegState:
    """``bpf_dynptr_slice[_rdwr](ptr, offset, buffer__opt, buffer__szk)``: a pointer to
    ``buffer__szk`` (a constant) bytes, or NULL, tied to the dynptr (invalid once it is
    destroyed or released, and for skb/xdp dynptrs when the packet may move); read-only for
    bpf_dynptr_slice."""
    from . import dynptr
    from . import precision
    from .calls import helper_mem_access
    regs = state.cur.regs
    meta: dict = {}
    dynptr.process_arg(env, state, _dynptr_stack_arg(state, 1, pc), 1, {"rdonly"}, pc, meta)
    _scalar_args(state, 2, 2, pc)
    r3, r4 = regs[3], regs[4]
    if r3.type == st.NOT_INIT:
        raise Reject("R3 !read_ok", "uninit-reg", pc, regno=3)
    if r4.type != st.SCALAR:
        raise Reject("R4 is not a scalar", "kfunc-arg", pc, regno=4)
    if r4.var_off.mask:
        raise Reject("R4 must be a known constant", "kfunc-arg", pc, regno=4)
    size = r4.var_off.value
    precision.mark_regs(env, state, (4,))
    null_buffer = r3.type == st.SCALAR and not r3.var_off.mask and r3.var_off.value == 0
    if not null_buffer:
        if r3.type != st.STACK:
            raise Reject(f"buffer argument R3 of type {r3.type} is not supported by pybpf's "
                         "verifier", "unsupported", pc)
        try:
            # the buffer is checked as read, then as written (check_kfunc_mem_size_reg,
            # each check relying on the size's exact value); the written slots are not
            # printed after the call (not scratched)
            scratched = set(env.log.scratched)
            helper_mem_access(env, state, r3, 3, size, False, False, pc)
            precision.mark_regs(env, state, (4,))
            helper_mem_access(env, state, r3, 3, size, True, False, pc)
            env.log.scratched = scratched
        except Reject as exc:
            env.log.line(exc.args[0] if exc.args else str(exc))
            raise Reject("arg#2 arg#3 memory, len pair leads to invalid memory access",
                         "kfunc-arg", pc) from None
    rdwr = k.name.endswith("_rdwr")
    if rdwr and not env.ptype.direct_packet_write:
        raise Reject("the prog does not allow writes to packet data", "readonly-packet", pc)
    _, _, dynptr_id, ref, kind = meta["dynptr"]
    r0 = RegState.pointer(st.MEM_OR_NULL if rdwr else st.RDONLY_MEM_OR_NULL, mem_size=size)
    r0.id = env.new_id()
    r0.subprog = dynptr_id
    # pybpf also ties a ring buffer dynptr's slice to its reference (never looser)
    r0.ref_obj_id = ref
    r0.map = kind
    return r0
