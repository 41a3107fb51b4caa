"""Dynamic pointers (``struct bpf_dynptr``) on the stack, as Linux 6.18's verifier models them.

Followed from kernel/bpf/verifier.c (``process_dynptr_func``, ``dynptr_get_spi``,
``mark_stack_slots_dynptr``, ``unmark_stack_slots_dynptr``, ``destroy_if_dynptr_stack_slot``,
``is_dynptr_reg_valid_init``) and checked against the running kernel by
``tests/verifier/test_dynptr.py``:

- a 16-byte ``struct bpf_dynptr`` lives in two 8-byte stack slots whose bytes are ``st.DYNPTR``
  (the kernel's STACK_DYNPTR); each slot keeps a register of type ``st.DYNPTR_REG`` holding the
  dynptr's kind (``local``, ``ringbuf``), whether it is the first slot (the higher-addressed
  one's partner: the slot at the dynptr's start), the dynptr's id and, for a ring buffer
  dynptr, the acquired reference (which must be released by submit or discard, even when the
  reservation failed);
- a helper argument that creates a dynptr takes any 8-aligned stack offset at or below fp-16
  ("Dynptr has to be an uninitialized dynptr" otherwise, or when it would overwrite a
  referenced dynptr); one that uses a dynptr needs both slots initialised with the first at the
  argument ("Expected an initialized dynptr as arg #N") and of the right kind;
- a store into either slot destroys the whole dynptr (a referenced one cannot be overwritten)
  and invalidates the data slices (``bpf_dynptr_data`` results) taken from it; releasing a ring
  buffer dynptr invalidates its slots and every slice sharing its reference.

The register fields are reused (as for iterators): ``map`` holds the kind, ``range`` 1 for the
first slot; a slice (mem / mem_or_null) keeps its dynptr's id in ``subprog``.
"""

from __future__ import annotations

from . import state as st
from .memory import Reject
from .state import RegState

#: size of ``struct bpf_dynptr`` (two stack slots)
DYNPTR_SIZE = 16
#: dynptr kinds that hold an acquired reference (dynptr_type_refcounted)
REFCOUNTED = frozenset({"ringbuf"})
#: the types of a dynptr's data slices (bpf_dynptr_data, bpf_dynptr_slice[_rdwr])
SLICE_TYPES = (st.MEM, st.MEM_OR_NULL, st.RDONLY_MEM, st.RDONLY_MEM_OR_NULL)
#: dynptr kinds over packet data: their slices die when the packet may move
PACKET_KINDS = frozenset({"skb", "xdp"})
#: kind flags an argument kind may carry (DYNPTR_TYPE_*)
KINDS = ("local", "ringbuf", "skb", "xdp")


def arg_kind(flags: set[str]) -> str | None:
    """The dynptr kind an argument wants (None: any kind)."""
    return next((k for k in KINDS if k in flags), None)


def get_spi(env, r: RegState, pc: int) -> int:
    """``dynptr_get_spi``: the first slot's index; -1 for an offset that cannot hold a dynptr
    (logged as the kernel logs it), -2 when the slots are beyond the allocated stack."""
    if r.var_off.mask:
        env.log.line("dynptr has to be at a constant offset")
        return -1
    from . import bounds as bd
    off = r.off + bd.s64(r.var_off.value)
    spi = (-off - 1) // 8
    if off % 8 or spi < 1:
        env.log.line(f"cannot pass in dynptr at an offset={off}")
        return -1
    return spi


def _bounds_valid(frame, spi: int) -> bool:
    """``is_spi_bounds_valid``: both slots inside the frame's allocated stack."""
    return spi - 1 >= 0 and spi < (frame.allocated + 7) // 8


def is_first(slot) -> bool:
    return slot is not None and slot.types[0] == st.DYNPTR and slot.spilled is not None and \
        slot.spilled.range == 1


def valid_init(env, state, r: RegState, pc: int) -> tuple | None:
    """``is_dynptr_reg_valid_init``: (frame, spi, first slot's register) or None."""
    spi = get_spi(env, r, pc)
    if spi < 0:
        return None
    frame = state.frames[r.frameno]
    if not _bounds_valid(frame, spi):
        return None
    first, second = frame.stack.get(spi), frame.stack.get(spi - 1)
    if not is_first(first) or second is None or second.types != st.DYNPTR * 8 or \
            first.types != st.DYNPTR * 8:
        return None
    return frame, spi, first.spilled


def destroy_slot(env, state, frame, spi: int, pc: int) -> None:
    """``destroy_if_dynptr_stack_slot``: a write touching slot ``spi`` of a dynptr destroys
    both of its slots and invalidates its slices; a referenced dynptr cannot be overwritten."""
    slot = frame.stack.get(spi)
    if slot is None or slot.types[0] != st.DYNPTR or slot.spilled is None:
        return
    if slot.spilled.range != 1:
        spi += 1
        slot = frame.stack.get(spi)
        if slot is None or slot.spilled is None:
            return
    if slot.spilled.map in REFCOUNTED:
        raise Reject("cannot overwrite referenced dynptr", "dynptr-overwrite", pc)
    _invalidate(env, state, frame, spi)


def _scratch(env, state, frameno: int, spi: int) -> None:
    """Both slots are printed after the instruction (mark_stack_slot_scratched)."""
    if env.log.level and frameno == len(state.frames) - 1:
        env.log.scratched.update((spi, spi - 1))


def _invalidate(env, state, frame, spi: int) -> None:
    """``invalidate_dynptr`` plus the slice invalidation of the destroy path."""
    dynptr_id = frame.stack[spi].spilled.id
    frame.stack[spi] = st.StackSlot()
    frame.stack[spi - 1] = st.StackSlot()
    for reg in state.all_regs():
        if reg.type in SLICE_TYPES and reg.subprog == dynptr_id and dynptr_id:
            _mark_invalid(env, reg)


def _mark_invalid(env, reg: RegState) -> None:
    fresh = RegState.scalar_unknown() if env.privileged else RegState()
    for f in RegState.__slots__:
        setattr(reg, f, getattr(fresh, f))


def destroy_range(env, state, frame, lo: int, hi: int, pc: int) -> None:
    """A store to fp+[lo, hi): destroy every dynptr whose slots it touches."""
    for spi in range((-(hi - 1) - 1) // 8, (-lo - 1) // 8 + 1):
        destroy_slot(env, state, frame, spi, pc)


def check_helper_write(frame, lo: int, hi: int, pc: int) -> None:
    """A helper writing stack memory may not overwrite dynptr bytes
    (check_stack_range_initialized's raw-mode check)."""
    for b in range(lo, hi):
        k = -b - 1
        slot = frame.stack.get(k // 8)
        if slot is not None and slot.types[k % 8] == st.DYNPTR:
            raise Reject(f"potential write to dynptr at off={b} disallowed", "dynptr-overwrite",
                         pc)


def process_arg(env, state, r: RegState, regno: int, flags: set[str], pc: int, meta: dict
                ) -> None:
    """``process_dynptr_func`` for a helper argument (``r`` is a stack pointer, checked)."""
    from . import memory as mem
    kind = arg_kind(flags)
    if "uninit" in flags:
        spi = get_spi(env, r, pc)
        if spi == -1:
            raise Reject("Dynptr has to be an uninitialized dynptr", "dynptr-init", pc)
        # the helper writes the 16 bytes (two 8-byte stores, destroying what was there)
        for i in (0, 8):
            mem.stack_write(env, state, r, regno, r.off + i, 8, None, None, pc)
        frame = state.frames[r.frameno]
        dynptr_id = env.new_id()
        ref = 0
        if kind in REFCOUNTED:
            ref = env.new_id()
            state.refs[ref] = pc
        for s, first in ((spi, 1), (spi - 1, 0)):
            d = RegState(st.DYNPTR_REG)
            d.map = kind
            d.range = first
            d.id = dynptr_id
            d.ref_obj_id = ref
            frame.stack[s] = st.StackSlot(st.DYNPTR * 8, d)
        _scratch(env, state, r.frameno, spi)
        return
    got = valid_init(env, state, r, pc)
    if got is None:
        raise Reject(f"Expected an initialized dynptr as arg #{regno - 1}", "dynptr-uninit",
                     pc, regno=regno)
    frame, spi, d = got
    _scratch(env, state, r.frameno, spi)
    if kind is not None and d.map != kind:
        raise Reject(f"Expected a dynptr of type {kind} as arg #{regno - 1}", "dynptr-kind",
                     pc, regno=regno)
    meta["dynptr"] = (frame, spi, d.id, d.ref_obj_id, d.map)


def check_release_arg(env, state, r: RegState, regno: int, pc: int) -> None:
    """A dynptr passed to a release helper must hold a reference (check_func_arg)."""
    spi = get_spi(env, r, pc)
    frame = state.frames[r.frameno]
    slot = frame.stack.get(spi) if spi >= 0 else None
    if slot is None or slot.spilled is None or not slot.spilled.ref_obj_id:
        raise Reject(f"arg {regno} is an unacquired reference", "unacquired-ref", pc)


def release(env, state, meta: dict, pc: int) -> None:
    """``unmark_stack_slots_dynptr``: release the reference, invalidate the dynptr's slots,
    its clones and every slice carrying the reference."""
    frame, spi, dynptr_id, ref, _kind = meta["dynptr"]
    if not ref:
        _invalidate(env, state, frame, spi)
        return
    for f in state.frames:
        for s, slot in list(f.stack.items()):
            if is_first(slot) and slot.spilled.ref_obj_id == ref:
                _invalidate(env, state, f, s)
    state.refs.pop(ref, None)
    for reg in state.all_regs():
        if reg.ref_obj_id == ref:
            _mark_invalid(env, reg)


def slot_text(slot) -> str | None:
    """The kernel's notation of a dynptr (printed at its first slot), e.g.
    ``dynptr_ringbuf(ref_id=2)``; '' for the second slot (not printed)."""
    d = slot.spilled
    if d.range != 1:
        return ""
    parts = [f"id={d.id}"] if d.id else []
    if d.ref_obj_id:
        parts.append(f"ref_id={d.ref_obj_id}")
    if d.id:
        # both slots also carry the dynptr's id as their dynptr_id
        parts.append(f"dynptr_id={d.id}")
    return f"dynptr_{d.map}({','.join(parts)})"


def invalidate_packet_slices(env, state) -> None:
    """``clear_all_pkt_pointers`` also invalidates slices of skb and xdp dynptrs (their kind is
    kept in the slice's ``map`` field)."""
    for reg in state.all_regs():
        if reg.type in SLICE_TYPES and reg.map in PACKET_KINDS:
            _mark_invalid(env, reg)
