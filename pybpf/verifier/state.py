"""Abstract machine state: registers, stack bytes and call frames.

Mirrors the kernel's ``struct bpf_reg_state`` / ``bpf_stack_state`` / ``bpf_func_state``:
a register has a type (scalar, ctx, fp, map pointer, map value, packet pointers, memory, ...),
a fixed offset, a variable part (tnum plus the eight bounds, shared with scalars), an id that
links copies (null checks and packet range checks refine every register with the same id) and
type-specific data (the map, the proven packet range, the memory size). The stack is tracked per
byte with the kernel's four kinds: invalid ``?``, misc ``m``, zero ``0`` and spilled register
``r``; a spilled register is kept with its slot.

States are copied when a branch is pushed or a checkpoint is stored; within one path registers
are mutated in place, so every copy must own its objects (``copy``).
"""

from __future__ import annotations

from .tnum import Tnum, UNKNOWN
from . import bounds

# register types (the kernel's enum bpf_reg_type, base types plus the null flag folded in)
NOT_INIT = "not_init"
SCALAR = "scalar"
CTX = "ctx"
STACK = "fp"
MAP_PTR = "map_ptr"
MAP_VALUE = "map_value"
MAP_VALUE_OR_NULL = "map_value_or_null"
MAP_KEY = "map_key"
PACKET = "pkt"
PACKET_META = "pkt_meta"
PACKET_END = "pkt_end"
MEM = "mem"
MEM_OR_NULL = "mem_or_null"
RINGBUF_MEM = "ringbuf_mem"
# read-only memory (PTR_TO_MEM | MEM_RDONLY): the int an iterator's next returns (kfuncs.py)
RDONLY_MEM = "rdonly_mem"
RINGBUF_MEM_OR_NULL = "ringbuf_mem_or_null"
# a bpf_dynptr_slice result before its null check (PTR_TO_MEM | MEM_RDONLY | PTR_MAYBE_NULL)
RDONLY_MEM_OR_NULL = "rdonly_mem_or_null"
FUNC = "func"
SOCK_COMMON_OR_NULL = "sock_common_or_null"
#: the register kept in an iterator stack slot (kfuncs.py): its reference, state and depth
ITER_REG = "iter"
#: the register kept in each of a dynptr's two stack slots (dynptr.py)
DYNPTR_REG = "dynptr"

# a scalar id carrying a constant delta to the registers sharing it (``r1 = r2; r1 += 4``,
# the kernel's BPF_ADD_CONST64/32 flags; the delta is kept in ``off``)
ADD_CONST64 = 1 << 31
ADD_CONST32 = 1 << 30
ADD_CONST = ADD_CONST64 | ADD_CONST32

NULLABLE = {MAP_VALUE_OR_NULL: MAP_VALUE, MEM_OR_NULL: MEM,
            RINGBUF_MEM_OR_NULL: RINGBUF_MEM, RDONLY_MEM_OR_NULL: RDONLY_MEM, SOCK_COMMON_OR_NULL: "sock_common"}
PACKET_TYPES = (PACKET, PACKET_META)

# stack byte kinds (kernel: STACK_INVALID, STACK_MISC, STACK_ZERO, STACK_SPILL)
INVALID, MISC, ZERO, SPILL = "?", "m", "0", "r"
# an open-coded iterator (the kernel's STACK_ITER), whole 8-byte slots only (kfuncs.py)
ITER = "i"
# a dynptr (the kernel's STACK_DYNPTR): two whole slots (dynptr.py)
DYNPTR = "d"


_new = object.__new__


class RegState:
    """One register's abstract value."""

    __slots__ = ("type", "off", "var_off", "smin", "smax", "umin", "umax", "s32min",
                 "s32max", "u32min", "u32max", "id", "ref_obj_id", "map", "mem_size",
                 "range", "frameno", "subprog", "origin", "precise")

    def __init__(self, type: str = NOT_INIT):
        self.type = type
        self.off = 0
        self.var_off: Tnum = UNKNOWN
        self.smin = bounds.S64_MIN
        self.smax = bounds.S64_MAX
        self.umin = 0
        self.umax = bounds.U64
        self.s32min = bounds.S32_MIN
        self.s32max = bounds.S32_MAX
        self.u32min = 0
        self.u32max = bounds.U32
        self.id = 0
        self.ref_obj_id = 0
        self.map = None        # index into Program.maps for map pointers and values
        self.mem_size = 0      # size of PTR_TO_MEM regions
        self.range = 0         # proven packet bytes after the pointer
        self.frameno = 0       # frame owning a stack pointer
        self.subprog = 0       # target of a PTR_TO_FUNC
        self.origin = None     # pc that produced the value (for explanations)
        # the verdict depends on this scalar's exact range (precision.py); pruning compares
        # only precise scalars by range
        self.precise = False

    def copy(self) -> "RegState":
        r = _new(RegState)
        (r.type, r.off, r.var_off, r.smin, r.smax, r.umin, r.umax, r.s32min, r.s32max,
         r.u32min, r.u32max, r.id, r.ref_obj_id, r.map, r.mem_size, r.range, r.frameno,
         r.subprog, r.origin, r.precise) = (
            self.type, self.off, self.var_off, self.smin, self.smax, self.umin, self.umax,
            self.s32min, self.s32max, self.u32min, self.u32max, self.id, self.ref_obj_id,
            self.map, self.mem_size, self.range, self.frameno, self.subprog, self.origin,
            self.precise)
        return r

    # an iterator slot's register keeps the iterator's state ("active"/"drained") in ``map``
    # and its depth in ``range`` (both unused by the iterator type), so copies and exact keys
    # carry them without widening every register
    @property
    def iter_state(self):
        return self.map

    @iter_state.setter
    def iter_state(self, v) -> None:
        self.map = v

    @property
    def iter_depth(self) -> int:
        return self.range

    @iter_depth.setter
    def iter_depth(self, v: int) -> None:
        self.range = v

    def key(self) -> tuple:
        """Everything that matters for exact comparison (loop detection)."""
        return (self.type, self.off, self.var_off, self.smin, self.smax, self.umin, self.umax,
                self.s32min, self.s32max, self.u32min, self.u32max, self.id, self.ref_obj_id,
                self.map, self.mem_size, self.range, self.frameno, self.subprog)

    # constructors -----------------------------------------------------------------------
    @classmethod
    def scalar_unknown(cls) -> "RegState":
        return cls(SCALAR)

    @classmethod
    def scalar_const(cls, value: int) -> "RegState":
        r = cls(SCALAR)
        bounds.mark_known(r, value)
        return r

    @classmethod
    def pointer(cls, type: str, off: int = 0, **extra) -> "RegState":
        r = cls(type)
        bounds.mark_known(r, 0)
        r.off = off
        for k, v in extra.items():
            setattr(r, k, v)
        return r

    def set_pointer_bounds_zero(self) -> None:
        bounds.mark_known(self, 0)

    @property
    def is_pointer(self) -> bool:
        return self.type not in (SCALAR, NOT_INIT)

    def is_const(self) -> bool:
        return self.type == SCALAR and self.var_off.mask == 0


class StackSlot:
    """Eight stack bytes: their kinds (index 0 is the byte nearest the frame top, as the
    kernel's ``slot_type``) and the spilled register, if any."""

    __slots__ = ("types", "spilled")

    def __init__(self, types: str = INVALID * 8, spilled: RegState | None = None):
        self.types = types
        self.spilled = spilled

    def copy(self) -> "StackSlot":
        return StackSlot(self.types, self.spilled.copy() if self.spilled else None)

    def is_spill(self) -> bool:
        return self.types[7] == SPILL


class FuncState:
    """One call frame: registers, stack slots by index (slot i covers fp-8*(i+1)..fp-8*i-1),
    the call site and the subprogram."""

    __slots__ = ("regs", "stack", "callsite", "subprog", "frameno", "allocated",
                 "in_callback", "callback_depth")

    def __init__(self, frameno: int = 0, subprog: int = 0, callsite: int = -1):
        self.regs = [RegState() for _ in range(11)]
        self.stack: dict[int, StackSlot] = {}
        self.callsite = callsite
        self.subprog = subprog
        self.frameno = frameno
        self.allocated = 0   # deepest stack byte used (bytes)
        # a callback frame (bpf_loop, bpf_for_each_map_elem) returns to its call site, and
        # the number of callback visits started from this frame (the kernel's
        # in_callback_fn and callback_depth)
        self.in_callback = False
        self.callback_depth = 0

    def copy(self) -> "FuncState":
        f = FuncState.__new__(FuncState)
        f.regs = [r.copy() for r in self.regs]
        f.stack = {i: s.copy() for i, s in self.stack.items()}
        f.callsite = self.callsite
        f.subprog = self.subprog
        f.frameno = self.frameno
        f.allocated = self.allocated
        f.in_callback = self.in_callback
        f.callback_depth = self.callback_depth
        return f


class VerifierState:
    """The whole machine on one path: frames (innermost last) and acquired references."""

    __slots__ = ("frames", "refs", "history", "insn_idx", "cb_unroll", "lock", "parent",
                 "trace", "first_idx", "bt_memo", "may_goto_depth", "rcu", "preempt")

    def __init__(self):
        self.frames: list[FuncState] = []
        self.refs: dict[int, int] = {}   # ref_obj_id -> pc that acquired it
        self.history: tuple | None = None  # linked list of (pc, taken, parent) for explanations
        self.insn_idx = 0
        self.cb_unroll = 0   # callback bodies entered on this path (callback_unroll_depth)
        self.lock: tuple | None = None   # (map index, pointer id) of the held bpf_spin_lock
        # precision backtracking (precision.py): the checkpoint this path continues from,
        # the instructions executed since then and the first of them
        self.parent: VerifierState | None = None
        self.trace: list = []
        self.first_idx = 0
        self.bt_memo: tuple | None = None   # the last backtracking request walked in full
        self.may_goto_depth = 0   # may_goto fall-throughs taken on this path
        # kfunc-delimited regions (kfuncs.py): inside bpf_rcu_read_lock (not nestable) and
        # the bpf_preempt_disable depth (the kernel's active_rcu_lock, active_preempt_locks)
        self.rcu = False
        self.preempt = 0

    @property
    def cur(self) -> FuncState:
        return self.frames[-1]

    def copy(self) -> "VerifierState":
        s = VerifierState.__new__(VerifierState)
        s.frames = [f.copy() for f in self.frames]
        s.refs = dict(self.refs)
        s.history = self.history
        s.insn_idx = self.insn_idx
        s.cb_unroll = self.cb_unroll
        s.lock = self.lock
        s.parent = self.parent
        s.trace = self.trace[:]
        s.first_idx = self.first_idx
        s.bt_memo = self.bt_memo
        s.may_goto_depth = self.may_goto_depth
        s.rcu = self.rcu
        s.preempt = self.preempt
        return s

    def note_stack(self, frameno: int, spi: int) -> None:
        """The instruction being processed spilled or filled stack slot ``spi`` of frame
        ``frameno`` at a fixed offset (INSN_F_STACK_ACCESS, for backtracking)."""
        if self.trace:
            e = self.trace[-1]
            pc = e if e.__class__ is int else e[0]
            linked = None if e.__class__ is int else e[2]
            self.trace[-1] = (pc, (frameno, spi), linked)

    def all_regs(self):
        """Every register and spilled register in every frame (``bpf_for_each_reg_in_vstate``)."""
        for f in self.frames:
            yield from f.regs
            for slot in f.stack.values():
                if slot.spilled is not None:
                    yield slot.spilled

    def exact_key(self) -> tuple:
        return tuple((tuple(r.key() for r in f.regs),
                      tuple(sorted((i, s.types, s.spilled.key() if s.spilled else None)
                                   for i, s in f.stack.items())), f.callsite)
                     for f in self.frames) + (self.cb_unroll, self.lock, self.may_goto_depth, self.rcu,
                                   self.preempt)
