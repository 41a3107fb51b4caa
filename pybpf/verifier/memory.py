"""Memory access checks per region, as the kernel's ``check_mem_access`` and its helpers.

Each region has its own rule: the stack (fixed or bounded variable offset inside the 512-byte
frame, strict alignment, per-byte initialisation, spills and fills), the context (the program
type's field table, unmodified pointer only), packet data (the range proven by comparisons with
``pkt_end``), map values and helper memory (fixed plus variable offset inside the value) and
read-only regions. Errors are raised as :class:`Reject` with the kernel's message text.
"""

from __future__ import annotations

from . import bounds as bd
from . import state as st
from . import tnum as tn
from .state import RegState, StackSlot

MAX_VAR_OFF = 1 << 29
MAX_PACKET_OFF = 0xFFFF
STACK_SIZE = 512


class Reject(Exception):
    """The program is refused: kernel-style message, instruction, and facts for explanations."""

    def __init__(self, message: str, error_id: str, pc: int | None = None, **facts):
        super().__init__(message)
        self.message = message
        self.error_id = error_id
        self.pc = pc
        self.facts = facts


def reg_type_str(r: RegState) -> str:
    return r.type if r.type != st.NOT_INIT else "?"


# --- generic bounded region (map values, helper memory) -------------------------------------

def _mem_msg(r: RegState, off: int, size: int, mem_size: int, regno: int) -> tuple[str, str]:
    if r.type == st.MAP_VALUE:
        return (f"invalid access to map value, value_size={mem_size} off={off} size={size}",
                "map-value-out-of-bounds")
    if r.type == st.MAP_KEY:
        return (f"invalid access to map key, key_size={mem_size} off={off} size={size}",
                "map-key-out-of-bounds")
    if r.type in (st.PACKET, st.PACKET_META, st.PACKET_END):
        return (f"invalid access to packet, off={off} size={size}, R{regno}(id={r.id},"
                f"off={off},r={mem_size})", "packet-out-of-bounds")
    return (f"invalid access to memory, mem_size={mem_size} off={off} size={size}",
            "mem-out-of-bounds")


def _check_mem(r: RegState, regno: int, off: int, size: int, mem_size: int, zero_ok: bool,
               pc: int, what: str) -> None:
    size_ok = size > 0 or (size == 0 and zero_ok)
    if off >= 0 and size_ok and off + size <= mem_size:
        return
    msg, eid = _mem_msg(r, off, size, mem_size, regno)
    raise Reject(msg + f"\nR{regno} {what} is outside of the allowed memory range"
                 if what else msg, eid, pc, regno=regno, off=off, size=size,
                 mem_size=mem_size, region=r.type)


def check_mem_region(r: RegState, regno: int, off: int, size: int, mem_size: int,
                     zero_ok: bool, pc: int) -> None:
    """``check_mem_region_access``: fixed + variable offset inside [0, mem_size)."""
    if r.smin < 0 and (r.smin == bd.S64_MIN or not (-(1 << 31) <= off + r.smin < (1 << 31))
                       or r.smin + off < 0):
        raise Reject(f"R{regno} min value is negative, either use unsigned index or do a "
                     f"if (index >=0) check.", "negative-index", pc, regno=regno,
                     smin=r.smin, off=off, size=size, mem_size=mem_size, region=r.type)
    _check_mem(r, regno, r.smin + off, size, mem_size, zero_ok, pc, "min value")
    if r.umax >= MAX_VAR_OFF:
        raise Reject(f"R{regno} unbounded memory access, make sure to bounds check any such "
                     f"access", "unbounded-access", pc, regno=regno, umax=r.umax, off=off,
                     size=size, mem_size=mem_size, region=r.type)
    _check_mem(r, regno, r.umax + off, size, mem_size, zero_ok, pc, "max value")


def check_packet(r: RegState, regno: int, off: int, size: int, zero_ok: bool, pc: int) -> None:
    if r.smin < 0:
        raise Reject(f"R{regno} min value is negative, either use unsigned index or do a "
                     f"if (index >=0) check.", "negative-index", pc, regno=regno, smin=r.smin)
    size_ok = size > 0 or (size == 0 and zero_ok)
    if off >= 0 and size_ok and off + size <= r.range:
        return
    if r.range < 0:
        # at or beyond pkt_end (a marker range): check_packet_access says only this
        raise Reject(f"R{regno} offset is outside of the packet", "packet-out-of-bounds", pc,
                     regno=regno, off=off, size=size, range=r.range)
    raise Reject(f"invalid access to packet, off={off} size={size}, R{regno}(id={r.id},"
                 f"off={off},r={r.range})\nR{regno} offset is outside of the packet",
                 "packet-out-of-bounds", pc, regno=regno, off=off, size=size, range=r.range)


# --- stack -----------------------------------------------------------------------------------

def frame_of(state, r: RegState):
    return state.frames[r.frameno]


def _stack_bounds(r: RegState, regno: int, off: int, size: int, kind: str, pc: int
                  ) -> tuple[int, int]:
    """``check_stack_access_within_bounds``; returns [min_off, max_off) relative to fp."""
    extra = {"read": " read from", "write": " write to", "helper": " read from",
             "helper_write": " write to"}[kind]
    if r.var_off.mask == 0:
        lo = bd.s64(r.var_off.value) + off
        hi = lo + size
        if lo < -STACK_SIZE or hi > 0 or size <= 0 and not kind.startswith("helper"):
            raise Reject(f"invalid{extra} stack R{regno} off={off} size={size}",
                         "stack-out-of-bounds", pc, regno=regno, off=lo, size=size)
        if lo < -STACK_SIZE or hi > 0:
            raise Reject(f"invalid{extra} stack R{regno} off={off} size={size}",
                         "stack-out-of-bounds", pc, regno=regno, off=lo, size=size)
        return lo, hi
    if r.smax >= MAX_VAR_OFF or r.smin <= -MAX_VAR_OFF:
        raise Reject(f"invalid unbounded variable-offset{extra} stack R{regno}",
                     "unbounded-stack-offset", pc, regno=regno)
    lo = r.smin + off
    hi = r.smax + off + size
    if lo < -STACK_SIZE or hi > 0:
        raise Reject(f"invalid variable-offset{extra} stack R{regno} var_off={r.var_off} "
                     f"off={off} size={size}", "stack-out-of-bounds", pc, regno=regno,
                     smin=r.smin, smax=r.smax, off=off, size=size)
    return lo, hi


def check_stack_alignment(r: RegState, regno: int, off: int, size: int, pc: int) -> None:
    reg_off = tn.add(r.var_off, tn.const(r.off + off))
    if reg_off.value & (size - 1) or reg_off.mask & (size - 1):
        vo = str(bd.s64(r.var_off.value)) if r.var_off.mask == 0 else str(r.var_off)
        raise Reject(f"misaligned stack access off {vo}+{r.off}+{off} size {size}",
                     "misaligned-stack", pc, regno=regno, off=r.off + off, size=size)


def _get_slot(frame, spi: int) -> StackSlot:
    slot = frame.stack.get(spi)
    if slot is None:
        slot = StackSlot()
        frame.stack[spi] = slot
    elif slot.types[0] == st.ITER:
        # a store into an iterator destroys it (its reference stays acquired, so the
        # program leaks it): the slot becomes ordinary misc bytes
        slot.types = st.MISC * 8
        slot.spilled = None
    return slot


def _touch(frame, lo: int) -> None:
    if -lo > frame.allocated:
        frame.allocated = -lo


def _set_byte(frame, byte_off: int, kind: str) -> None:
    """Mark the stack byte at fp+byte_off (negative) as ``kind``; drops a spilled register."""
    k = -byte_off - 1
    spi, idx = divmod(k, 8)
    slot = _get_slot(frame, spi)
    types = list(slot.types)
    if types[7] == st.SPILL and kind != st.SPILL:
        # a regular write into a spill slot destroys the spilled register and scrubs the
        # slot: every initialised byte becomes misc (the kernel's scrub_spilled_slot)
        types = [t if t == st.INVALID else st.MISC for t in types]
        slot.spilled = None
    types[idx] = kind
    slot.types = "".join(types)


def stack_write(env, state, r: RegState, regno: int, off: int, size: int,
                value: RegState | None, imm: int | None, pc: int) -> bool:
    """A store into the stack: a spill when the kernel would make one, else misc/zero bytes.
    Returns True when zero bytes were kept or made from a register's value, which the
    caller then marks precise (the kernel's STACK_ZERO cases)."""
    frame = frame_of(state, r)
    lo, hi = _stack_bounds(r, regno, off, size, "write", pc)
    _touch(frame, lo)
    # a store into a dynptr's slot destroys the dynptr (destroy_if_dynptr_stack_slot)
    _dynptr.destroy_range(env, state, frame, lo, hi, pc)
    if r.var_off.mask:
        writing_zero = (value is not None and value.is_const() and value.var_off.value == 0) \
            or (value is None and imm == 0)
        zero_used = False
        for b in range(lo, hi):
            k = -b - 1
            slot = _get_slot(frame, k // 8)
            cur = slot.types[k % 8]
            if writing_zero and cur == st.ZERO:
                zero_used = True
            _set_byte(frame, b, st.ZERO if writing_zero and cur == st.ZERO else st.MISC)
        return zero_used
    if value is not None and value.type != st.SCALAR and value.type != st.NOT_INIT:
        if size != 8:
            raise Reject("invalid size of register spill", "partial-pointer-spill", pc,
                         regno=regno, size=size)
        if state.frames.index(frame) != len(state.frames) - 1 and value.type == st.STACK:
            raise Reject("cannot spill pointers to stack into stack frame of the caller",
                         "spill-caller-stack", pc)
    spi = (-lo - 1) // 8
    aligned = lo % 8 == 0
    if value is not None:
        spill = value.type != st.SCALAR or (aligned and (env.privileged or size == 8))
    else:
        # an immediate store; None: the write of an atomic operation (misc bytes)
        spill = aligned and env.privileged and imm is not None
    if spill:
        # register spill (scalars of any size at a slot boundary, pointers of 8 bytes)
        if value is None:
            spilled = RegState.scalar_const(imm)
        else:
            if value.type == st.SCALAR and env.privileged and \
                    value.umax.bit_length() <= size * 8:
                # assign_scalar_id_before_mov: the register and its spilled copy are linked
                # (a "+= const" link is dropped first)
                if value.id & st.ADD_CONST:
                    value.id = 0
                    value.off = 0
                if not value.id and value.var_off.mask:
                    value.id = env.new_id()
            spilled = value.copy()
            if value.type == st.SCALAR and size < 8 and value.umax >= 1 << (size * 8):
                spilled.id = 0
        slot = _get_slot(frame, spi)
        types = list(slot.types)
        for i in range(8, 8 - size, -1):
            types[i - 1] = st.SPILL
        for i in range(8 - size):
            if types[i] == st.SPILL:
                types[i] = st.MISC
            elif types[i] != st.ZERO and not (types[i] == st.INVALID and env.privileged):
                types[i] = st.MISC
        slot.types = "".join(types)
        slot.spilled = spilled
        state.note_stack(r.frameno, spi)
        return False
    zero = (value is not None and value.is_const() and value.var_off.value == 0) or \
        (value is None and imm == 0)
    kind = st.ZERO if zero else st.MISC
    for b in range(lo, hi):
        _set_byte(frame, b, kind)
    return zero


def stack_read(env, state, r: RegState, regno: int, off: int, size: int, pc: int,
               dst: bool = True) -> RegState:
    """A load from the stack: the spilled register back, zero, or an unknown scalar."""
    frame = frame_of(state, r)
    lo, hi = _stack_bounds(r, regno, off, size, "read", pc)
    if r.var_off.mask:
        return _stack_range_value(env, frame, regno, lo, hi, off, pc, "read")
    k_lo = -lo - 1          # index of the lowest-addressed byte
    spi = k_lo // 8
    slot = frame.stack.get(spi)
    if slot is not None and slot.is_spill() and slot.spilled is not None:
        spilled = slot.spilled
        spill_size = 1
        i = 7
        while i > 0 and slot.types[i - 1] == st.SPILL:
            spill_size += 1
            i -= 1
        if size == 8 and spill_size == 8:
            out = spilled.copy()
            state.note_stack(r.frameno, spi)
            return out
        if spilled.type != st.SCALAR:
            raise Reject("invalid size of register fill", "partial-pointer-fill", pc,
                         regno=regno, size=size)
        if size <= spill_size and lo % 8 == 0:
            out = spilled.copy()
            if out.umax >= 1 << (size * 8):
                out.id = 0
            state.note_stack(r.frameno, spi)
            return out
        spill_cnt = zero_cnt = 0
        for b in range(lo, hi):
            k = -b - 1
            t = frame.stack[k // 8].types[k % 8] if k // 8 in frame.stack else st.INVALID
            if t == st.SPILL:
                spill_cnt += 1
            elif t == st.ZERO:
                zero_cnt += 1
            elif t == st.INVALID and not env.privileged:
                raise Reject(f"invalid read from stack off {lo}+{b - lo} size {size}",
                             "uninit-stack", pc, regno=regno, off=lo, size=size)
        if spill_cnt == size and spilled.is_const() and spilled.var_off.value == 0:
            state.note_stack(r.frameno, spi)
            return RegState.scalar_const(0)
        if zero_cnt == size:
            return RegState.scalar_const(0)
        return RegState.scalar_unknown()
    return _stack_range_value(env, frame, regno, lo, hi, off, pc, "direct")


def _stack_range_value(env, frame, regno: int, lo: int, hi: int, off: int, pc: int,
                       kind: str) -> RegState:
    all_zero = True
    for b in range(lo, hi):
        k = -b - 1
        slot = frame.stack.get(k // 8)
        t = slot.types[k % 8] if slot is not None else st.INVALID
        if t == st.ZERO:
            continue
        all_zero = False
        if t == st.MISC:
            continue
        if t == st.SPILL:
            if slot.spilled is None:
                raise Reject(f"invalid read from stack off {lo}+{b - lo} size {hi - lo}",
                             "uninit-stack", pc, regno=regno, off=lo, size=hi - lo)
            if slot.spilled.type == st.SCALAR or env.privileged:
                continue
            raise Reject(f"leaking pointer from stack off {b}", "pointer-leak", pc,
                         regno=regno)
        if t == st.INVALID and env.privileged:
            continue
        who = "" if kind == "direct" else f"R{regno} "
        raise Reject(f"invalid read from stack {who}off {lo}+{b - lo} size {hi - lo}",
                     "uninit-stack", pc, regno=regno, off=lo, size=hi - lo)
    return RegState.scalar_const(0) if all_zero else RegState.scalar_unknown()


def stack_helper_access(env, state, r: RegState, regno: int, size: int, write: bool,
                        zero_ok: bool, pc: int) -> None:
    """Memory passed to a helper: in bounds; initialised when read (root may read garbage)."""
    if size == 0 and zero_ok:
        return
    frame = frame_of(state, r)
    lo, hi = _stack_bounds(r, regno, r.off, size, "helper_write" if write else "helper", pc)
    _touch(frame, lo)
    if write and env.log.level and r.frameno == len(state.frames) - 1:
        # the slots a helper touched are printed after the call (scratched)
        env.log.scratched.update(range((-(hi - 1) - 1) // 8, (-lo - 1) // 8 + 1))
    if write:
        _dynptr.check_helper_write(frame, lo, hi, pc)
        for b in range(lo, hi):
            k = -b - 1
            slot = frame.stack.get(k // 8)
            if slot is not None and slot.types[k % 8] == st.SPILL and slot.spilled is not None \
                    and slot.spilled.type == st.SCALAR:
                slot.spilled = RegState.scalar_unknown()
                continue
            if slot is not None and slot.types[k % 8] == st.SPILL:
                slot.spilled = None
                slot.types = slot.types.replace(st.SPILL, st.MISC)
                continue
            _set_byte(frame, b, st.MISC)
        return
    _stack_range_value(env, frame, regno, lo, hi, r.off, pc, "helper")


# dynptr.py needs Reject from this module
from . import dynptr as _dynptr  # noqa: E402
