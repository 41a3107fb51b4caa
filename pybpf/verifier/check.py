"""The path-sensitive walk: the kernel's ``do_check`` over every path of the program.

An explicit worklist (depth first, fall-through first, like the kernel's ``push_stack``) walks
each path, applying the transfer function of every instruction to a :class:`VerifierState`.
Conditional jumps whose outcome the bounds decide follow one edge; otherwise both edges are
walked with each side refined. At prune points the state is compared with checkpoints stored
earlier at the same instruction: a state contained in a fully explored checkpoint (ranges
within, tnum subset, consistent id mapping, statically dead registers ignored) is pruned; one
exactly equal to a checkpoint still open on the current path is an infinite loop. The count of
processed instructions is capped at 1,000,000 like the kernel's complexity limit, so every
input ends in a verdict without recursion.
"""

from __future__ import annotations

from .. import isa
from ..program import Program
from . import bounds as bd
from . import calls
from . import kfuncs
from . import memory as mem
from . import state as st
from . import tnum as tn
from .cfg import MAY_GOTO, Layout
from .callbacks import CALLBACK_HELPER_IDS, callback_exit
from .memory import Reject
from . import spinlock
from . import precision
from .progtypes import ProgType
from .state import FuncState, RegState, VerifierState
from .log import frame_text, insn_text as log_insn_text, state_text as _state_text


def log_state_text(state, log) -> str:
    return _state_text(state, maps=log.maps)

COMPLEXITY_LIMIT = 1_000_000
JMP_SEQ_LIMIT = 8192
MAX_CALL_FRAMES = 8

_ALU_NAMES = {isa.ADD: "+=", isa.SUB: "-=", isa.MUL: "*=", isa.DIV: "/=", isa.OR: "|=",
              isa.AND: "&=", isa.LSH: "<<=", isa.RSH: ">>=", isa.NEG: "neg", isa.MOD: "%=",
              isa.XOR: "^=", isa.MOV: "=", isa.ARSH: "s>>=", isa.END: "endian"}
# opcode of "b <op> a" for "a <op> b", and of the negated condition
_FLIP = {isa.JEQ: isa.JEQ, isa.JNE: isa.JNE, isa.JSET: isa.JSET, isa.JGT: isa.JLT,
         isa.JGE: isa.JLE, isa.JLT: isa.JGT, isa.JLE: isa.JGE, isa.JSGT: isa.JSLT,
         isa.JSGE: isa.JSLE, isa.JSLT: isa.JSGT, isa.JSLE: isa.JSGE}
JSET_NOT = 0x100   # the kernel's "BPF_JSET | BPF_X" pseudo opcode for the false side of JSET
_REV = {isa.JEQ: isa.JNE, isa.JNE: isa.JEQ, isa.JGT: isa.JLE, isa.JLE: isa.JGT,
        isa.JGE: isa.JLT, isa.JLT: isa.JGE, isa.JSGT: isa.JSLE, isa.JSLE: isa.JSGT,
        isa.JSGE: isa.JSLT, isa.JSLT: isa.JSGE, isa.JSET: JSET_NOT, JSET_NOT: isa.JSET}


class Checkpoint:
    __slots__ = ("state", "open", "miss", "hit", "key", "k", "entry", "backedges",
                 "site_may_goto", "scc", "evicted", "iter_chain")

    def __init__(self, state: VerifierState, key, k: int):
        self.state = state
        self.open = True
        self.miss = 0
        self.hit = 0
        self.key = key
        self.k = k
        # the outermost open callback call site this state's loop started at (its
        # precision is incomplete while that is open), and for such an entry the pruned
        # revisits whose precision is propagated when it closes
        self.entry: Checkpoint | None = None
        self.backedges: list | None = None
        self.site_may_goto = False
        self.scc = None   # the loop visit this checkpoint entered (log level 2 only)
        # an in-progress state that kept missing was dropped from its list, as the kernel
        # drops it (no longer a loop head for the infinite-loop check, never compared)
        self.evicted = False
        # at an iterator's next: the loop (cfg SCC and call chain) it heads
        self.iter_chain = None


class Env:
    """Everything one verification needs (the kernel's ``bpf_verifier_env``)."""

    def __init__(self, program: Program, layout: Layout, ptype: ProgType, *,
                 unprivileged: bool, log, data_size: int = 0):
        self.program = program
        self.data_size = data_size   # the "raw" type's input length (R1's region, R2's value)
        self.layout = layout
        self.ptype = ptype
        self.privileged = not unprivileged
        self.maps = list(program.maps)     # plus inner-map templates (inner_map)
        self._inner: dict[int, int] = {}
        self.gpl = program.license in ("GPL", "GPL v2", "GPL and additional rights",
                                       "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL")
        self.log = log
        self.id_gen = 0
        self.insn_processed = 0
        self.total_states = 0
        self.peak_states = 0
        self.cur_states = 0
        self.max_states_per_insn = 0
        self.subprog_depth = [0] * len(layout.subprog_starts)
        self.checkpoints: dict[int, list[Checkpoint]] = {}
        self.open_keys: dict = {}
        self.last_state: VerifierState | None = None
        self.last_pc = 0
        # callback visits queued by the current helper call (callbacks.push_callback)
        self.pending_callbacks: list = []
        self.log_mark: int | None = None   # log position where the current insn began
        self.may_goto_open = 0   # open checkpoints at may_goto instructions and iterator nexts
        # the loops (scc chains) of the open checkpoints at iterator nexts: a state is inside
        # an iterator loop still being explored only there, not on the path after the loop
        # (which the drained iterator reaches first)
        self.iter_open: list = []
        self.loop_ids: list | None = None   # loop number per slot (cfg.loop_ids), lazily
        self.scc_entries: dict = {}          # loop visit -> the checkpoint that entered it
        # map index -> offset of the bpf_spin_lock in its value (from the object's BTF)
        self.lock_offs = spinlock.lock_offsets(program)

    def inner_map(self, outer: int) -> int:
        """Index in ``maps`` of the inner-map template of map-of-maps ``outer``."""
        if outer not in self._inner:
            spec = self.maps[outer].inner
            if spec is None:
                raise Reject(f"map '{self.maps[outer].name}' of maps has no inner map "
                             f"template", "map-in-map-template", None)
            self.maps.append(spec)
            self._inner[outer] = len(self.maps) - 1
        return self._inner[outer]

    def new_id(self) -> int:
        self.id_gen += 1
        return self.id_gen


# --- register helpers -------------------------------------------------------------------------

def _read_reg(regs, regno: int, pc: int) -> RegState:
    r = regs[regno]
    if r.type == st.NOT_INIT:
        raise Reject(f"R{regno} !read_ok", "uninit-register", pc, regno=regno)
    return r


def _check_dst(regno: int, pc: int) -> None:
    if regno == isa.FRAME_POINTER:
        raise Reject("frame pointer is read only", "frame-pointer-write", pc, regno=regno)


def _unknown(pc: int) -> RegState:
    r = RegState.scalar_unknown()
    r.origin = pc
    return r


# --- ALU --------------------------------------------------------------------------------------

def _mov(env: Env, regs, insn, pc: int) -> None:
    alu32 = insn.cls == isa.ALU
    d = insn.dst
    if insn.opcode & isa.X:
        src = _read_reg(regs, insn.src, pc)
        if src.type == st.SCALAR and src.id & st.ADD_CONST:
            # assign_scalar_id_before_mov: a copy of "rY + const" starts a new link
            src.id = 0
            src.off = 0
        if insn.off == 0:
            if not alu32:
                if src.type == st.SCALAR and not src.id and src.var_off.mask:
                    src.id = env.new_id()
                regs[d] = src.copy()
            else:
                if src.type == st.SCALAR:
                    is_u32 = src.umax <= bd.U32
                    if is_u32 and not src.id:
                        src.id = env.new_id()
                    out = src.copy()
                    if not is_u32:
                        out.id = 0
                    bd.zext_32_to_64(out)
                    bd.sync(out)
                elif not env.privileged:
                    raise Reject(f"R{insn.src} partial copy of pointer", "pointer-leak", pc,
                                 regno=insn.src)
                else:
                    out = RegState.scalar_unknown()
                    bd.zext_32_to_64(out)
                    bd.sync(out)
                regs[d] = out
        else:
            if src.type != st.SCALAR:
                if not env.privileged:
                    raise Reject(f"R{insn.src} sign-extension part of pointer", "pointer-leak",
                                 pc, regno=insn.src)
                out = RegState.scalar_unknown()
            else:
                no_sext = src.umax < (1 << (insn.off - 1))
                if no_sext and not src.id and src.var_off.mask:
                    src.id = env.new_id()
                out = src.copy()
                if not no_sext:
                    out.id = 0
                if alu32:
                    bd.sign_extend32(out, insn.off // 8)
                else:
                    bd.sign_extend(out, insn.off // 8)
            if alu32:
                bd.zext_32_to_64(out)
                bd.sync(out)
            regs[d] = out
    else:
        out = RegState(st.SCALAR)
        bd.mark_known(out, (insn.imm & bd.U32) if alu32 else insn.imm)
        regs[d] = out
    regs[d].origin = pc


def _endian(r: RegState, insn) -> None:
    size = insn.imm // 8
    if insn.cls == isa.ALU and not insn.opcode & isa.X:
        # to little endian on a little-endian machine: truncation only
        if size < 8:
            bd.truncate(r, size)
        return
    v, m = tn.cast(r.var_off, size)
    sw = lambda x: int.from_bytes(x.to_bytes(size, "little"), "big")  # noqa: E731
    bd.mark_unknown(r)
    r.var_off = tn.Tnum(sw(v), sw(m))
    bd.sync(r)


def _sane_offset(env, r: RegState, ptr_type: str, is_off_reg: bool, pc: int, regno: int) -> None:
    """``check_reg_sane_offset``: pointer math must stay within +-2^29."""
    known = r.var_off.mask == 0
    val = bd.s64(r.var_off.value)
    smin = r.smin
    if known and not (-mem.MAX_VAR_OFF < val < mem.MAX_VAR_OFF):
        raise Reject(f"math between {ptr_type} pointer and {val} is not allowed",
                     "pointer-math-range", pc, regno=regno)
    if not is_off_reg and not (-mem.MAX_VAR_OFF < r.off < mem.MAX_VAR_OFF):
        raise Reject(f"{ptr_type} pointer offset {r.off} is not allowed", "pointer-math-range",
                     pc, regno=regno)
    if smin == bd.S64_MIN:
        raise Reject(f"math between {ptr_type} pointer and register with unbounded min value "
                     f"is not allowed", "pointer-math-unbounded", pc, regno=regno)
    if not (-mem.MAX_VAR_OFF < smin < mem.MAX_VAR_OFF):
        raise Reject(f"value {smin} makes {ptr_type} pointer be out of bounds",
                     "pointer-math-range", pc, regno=regno)


_PTR_ARITH_OK = {st.CTX, st.MAP_VALUE, st.MAP_KEY, st.STACK, st.PACKET, st.PACKET_META,
                 st.MEM, st.RINGBUF_MEM, st.RDONLY_MEM, st.FUNC}


def _ptr_alu(env: Env, regs, insn, pc: int, ptr: RegState, off_reg: RegState,
             ptr_is_dst: bool) -> None:
    """``adjust_ptr_min_max_vals``: pointer +/- scalar."""
    op = insn.opcode & 0xF0
    d = insn.dst
    if insn.cls != isa.ALU64:
        if op == isa.SUB and env.privileged:
            regs[d] = _unknown(pc)
            return
        raise Reject(f"R{d} 32-bit pointer arithmetic prohibited", "pointer-arith-32", pc,
                     regno=d)
    if ptr.type in st.NULLABLE:
        raise Reject(f"R{d} pointer arithmetic on {ptr.type} prohibited, null-check it first",
                     "pointer-arith-null", pc, regno=d, ptr_type=ptr.type)
    known = off_reg.var_off.mask == 0
    smin_val = off_reg.smin
    if ptr.type not in _PTR_ARITH_OK:
        if not (ptr.type == st.MAP_PTR and known and smin_val == 0 and op == isa.ADD):
            raise Reject(f"R{d} pointer arithmetic on {ptr.type} prohibited",
                         "pointer-arith-prohibited", pc, regno=d, ptr_type=ptr.type)
    if op in (isa.AND, isa.OR, isa.XOR):
        raise Reject(f"R{d} bitwise operator {_ALU_NAMES[op]} on pointer prohibited",
                     "pointer-arith-prohibited", pc, regno=d, ptr_type=ptr.type)
    if op not in (isa.ADD, isa.SUB):
        raise Reject(f"R{d} pointer arithmetic with {_ALU_NAMES[op]} operator prohibited",
                     "pointer-arith-prohibited", pc, regno=d, ptr_type=ptr.type)
    _sane_offset(env, off_reg, ptr.type, True, pc, d)
    _sane_offset(env, ptr, ptr.type, False, pc, d)
    out = ptr.copy()
    out.origin = pc
    bd.mark_unbounded32(out)
    if op == isa.ADD:
        new_off = ptr.off + smin_val
        if known and -(1 << 31) <= new_off < (1 << 31):
            out.off = new_off
        else:
            lo, hi = ptr.smin + off_reg.smin, ptr.smax + off_reg.smax
            if not (bd.S64_MIN <= lo <= bd.S64_MAX and bd.S64_MIN <= hi <= bd.S64_MAX):
                lo, hi = bd.S64_MIN, bd.S64_MAX
            out.smin, out.smax = lo, hi
            lo, hi = ptr.umin + off_reg.umin, ptr.umax + off_reg.umax
            if hi > bd.U64:
                lo, hi = 0, bd.U64
            out.umin, out.umax = lo, hi
            out.var_off = tn.add(ptr.var_off, off_reg.var_off)
            if ptr.type in st.PACKET_TYPES:
                out.id = env.new_id()
                out.range = 0
    else:
        if not ptr_is_dst:
            raise Reject(f"R{d} tried to subtract pointer from scalar", "pointer-arith-prohibited",
                         pc, regno=d)
        if ptr.type == st.STACK:
            raise Reject(f"R{d} subtraction from stack pointer prohibited",
                         "pointer-arith-prohibited", pc, regno=d)
        new_off = ptr.off - smin_val
        if known and -(1 << 31) <= new_off < (1 << 31):
            out.off = new_off
        else:
            lo, hi = ptr.smin - off_reg.smax, ptr.smax - off_reg.smin
            if not (bd.S64_MIN <= lo <= bd.S64_MAX and bd.S64_MIN <= hi <= bd.S64_MAX):
                lo, hi = bd.S64_MIN, bd.S64_MAX
            out.smin, out.smax = lo, hi
            if ptr.umin < off_reg.umax:
                out.umin, out.umax = 0, bd.U64
            else:
                out.umin, out.umax = ptr.umin - off_reg.umax, ptr.umax - off_reg.umin
            out.var_off = tn.sub(ptr.var_off, off_reg.var_off)
            if ptr.type in st.PACKET_TYPES:
                out.id = env.new_id()
                if smin_val < 0:
                    out.range = 0
    _sane_offset(env, out, ptr.type, False, pc, d)
    bd.sync(out)
    if not env.privileged and ptr.type in (st.STACK, st.MAP_VALUE):
        _unpriv_ptr_bounds(env, out, d, pc)
    regs[d] = out


def _unpriv_ptr_bounds(env, r: RegState, regno: int, pc: int) -> None:
    """``sanitize_check_bounds``: unprivileged pointer math must stay inside the object."""
    if r.type == st.STACK:
        if r.var_off.mask:
            raise Reject(f"R{regno} variable stack access prohibited for !root, "
                         f"var_off={r.var_off} off={r.off}", "unpriv", pc, regno=regno)
        off = r.off + bd.s64(r.var_off.value)
        if off < -mem.STACK_SIZE or off > 0:
            raise Reject(f"R{regno} stack pointer arithmetic goes out of range, prohibited for "
                         f"!root", "unpriv", pc, regno=regno)
    else:
        size = env.maps[r.map].value_size
        if r.smin + r.off < 0 or r.umax + r.off > size:
            raise Reject(f"R{regno} pointer arithmetic of map value goes out of range, "
                         f"prohibited for !root", "unpriv", pc, regno=regno)


def _alu(env: Env, state: VerifierState, insn, pc: int) -> None:
    regs = state.cur.regs
    op = insn.opcode & 0xF0
    d = insn.dst
    alu32 = insn.cls == isa.ALU
    if op == isa.MOV:
        _check_dst(d, pc)
        _mov(env, regs, insn, pc)
        return
    if op in (isa.END, isa.NEG):
        dst = _read_reg(regs, d, pc)
        if dst.is_pointer and not env.privileged:
            raise Reject(f"R{d} pointer arithmetic prohibited", "pointer-arith-prohibited", pc,
                         regno=d)
        _check_dst(d, pc)
        if dst.type != st.SCALAR:
            regs[d] = _unknown(pc)
            return
        out = dst.copy()
        out.id = 0
        out.origin = pc
        if op == isa.END:
            _endian(out, insn)
        else:
            bd.alu(out, out, isa.NEG, alu32)
        regs[d] = out
        return
    dst = regs[d]
    if dst.type == st.SCALAR and dst.var_off.mask == 0 and op in bd._CONST_OPS and d != 10 \
            and not dst.id:
        # fast path: constant <op> constant is exact in the kernel too
        if insn.opcode & isa.X:
            src = regs[insn.src]
            b = src.var_off.value if src.type == st.SCALAR and src.var_off.mask == 0 else None
        else:
            b = insn.imm & bd.U64
        if b is not None:
            if dst.precise and insn.opcode & isa.X:
                precision.mark_regs(env, state, (insn.src,))
            w = 32 if alu32 else 64
            mask = bd.U32 if alu32 else bd.U64
            b &= mask
            if op not in (isa.LSH, isa.RSH, isa.ARSH) or b < w:
                v = bd._CONST_OPS[op](dst.var_off.value & mask, b, w) & mask
                dst.var_off = tn.Tnum(v, 0)
                dst.umin = dst.umax = v
                dst.smin = dst.smax = v - (1 << 64) if v >> 63 else v
                v32 = v & bd.U32
                dst.u32min = dst.u32max = v32
                dst.s32min = dst.s32max = v32 - (1 << 32) if v32 >> 31 else v32
                dst.id = 0
                dst.origin = pc
                return
    if insn.opcode & isa.X:
        src = _read_reg(regs, insn.src, pc)
    else:
        if op in (isa.DIV, isa.MOD) and insn.imm == 0:
            raise Reject("div by zero", "div-by-zero", pc)
        if op in (isa.LSH, isa.RSH, isa.ARSH):
            size = 32 if alu32 else 64
            if insn.imm < 0 or insn.imm >= size:
                raise Reject(f"invalid shift {insn.imm}", "invalid-shift", pc, shift=insn.imm)
        src = RegState(st.SCALAR)
        bd.mark_known(src, insn.imm)
    dst = _read_reg(regs, d, pc)
    _check_dst(d, pc)
    if dst.type != st.SCALAR or src.type != st.SCALAR:
        if dst.type != st.SCALAR and src.type != st.SCALAR:
            if op == isa.SUB and env.privileged:
                regs[d] = _unknown(pc)
                return
            raise Reject(f"R{d} pointer {_ALU_NAMES[op]} pointer prohibited",
                         "pointer-arith-prohibited", pc, regno=d)
        if dst.type != st.SCALAR:
            if insn.opcode & isa.X:
                # the offset's exact range goes into the pointer
                precision.mark_regs(env, state, (insn.src,))
            _ptr_alu(env, regs, insn, pc, dst, src, True)
        else:
            precision.mark_regs(env, state, (d,))
            _ptr_alu(env, regs, insn, pc, src, dst, False)
        return
    if dst.precise and insn.opcode & isa.X:
        # a precise result needs a precise operand
        precision.mark_regs(env, state, (insn.src,))
    out = dst.copy() if dst is src else dst
    link = _link_add_const(env, out, src, op, alu32)
    out.origin = pc
    bd.alu(out, src, op, alu32)
    if link is None:
        out.id = 0
        out.off = 0
    else:
        out.id, out.off = link
    regs[d] = out


def _link_add_const(env: Env, dst: RegState, src: RegState, op: int, alu32: bool):
    """Kernel 6.10+: ``r1 = r2; r1 += 4`` keeps r1 linked to r2 with a constant delta
    (BPF_ADD_CONST), so a bounds check on either refines both. Returns the new (id, delta)
    or None when the link is dropped. Decided on the operands before the operation."""
    if not (env.privileged and op in (isa.ADD, isa.SUB) and dst.id):
        return None
    if alu32:
        if src.var_off.mask & bd.U32:
            return None
        val = src.var_off.value & bd.U32
        if dst.umax > bd.U32:
            return None
        off = bd.s32(val)
    else:
        if src.var_off.mask:
            return None
        val = bd.s64(src.var_off.value)
        if not bd.S32_MIN <= val <= bd.S32_MAX:
            return None
        off = val
    if op == isa.SUB:
        if off == bd.S32_MIN:
            return None
        off = -off
    if dst.id & st.ADD_CONST:
        return None   # a second "+= const" cannot accumulate into the delta
    return dst.id | (st.ADD_CONST32 if alu32 else st.ADD_CONST64), off


# --- memory instructions ----------------------------------------------------------------------

def _mem_access(env: Env, state: VerifierState, regno: int, off: int, size: int, write: bool,
                pc: int, value: RegState | None = None, imm: int | None = None,
                sign_extend: bool = False, is_st: bool = False,
                value_regno: int | None = None) -> RegState | None:
    """``check_mem_access``: one load or store through register ``regno``."""
    regs = state.cur.regs
    r = _read_reg(regs, regno, pc)
    t = r.type
    result: RegState | None = None
    if t == st.STACK:
        mem.check_stack_alignment(r, regno, off, size, pc)
        if write:
            if mem.stack_write(env, state, r, regno, r.off + off, size, value, imm, pc) and \
                    value_regno is not None:
                precision.mark_regs(env, state, (value_regno,))
        else:
            result = mem.stack_read(env, state, r, regno, r.off + off, size, pc)
        if r.var_off.mask == 0:
            depth = -(r.off + off + bd.s64(r.var_off.value))
        else:
            depth = -(r.off + off + r.smin)
        fr = state.frames[r.frameno]
        sp = fr.subprog
        if depth > env.subprog_depth[sp]:
            env.subprog_depth[sp] = depth
    elif t == st.CTX:
        if r.off < 0:
            raise Reject(f"negative offset ctx ptr R{regno} off={r.off} disallowed",
                         "modified-ctx", pc, regno=regno, off=r.off)
        if r.off:
            raise Reject(f"dereference of modified ctx ptr R{regno} off={r.off} disallowed",
                         "modified-ctx", pc, regno=regno, off=r.off)
        if r.var_off.mask or r.var_off.value:
            raise Reject(f"variable ctx access var_off={r.var_off} disallowed", "modified-ctx",
                         pc, regno=regno)
        ok, kind = env.ptype.access(off, size, write)
        if sign_extend and kind is not None:
            ok = False   # a sign-extending load cannot produce a pointer
        if not ok:
            raise Reject(f"invalid bpf_context access off={off} size={size}", "ctx-access", pc,
                         regno=regno, off=off, size=size, write=write,
                         ctx=env.ptype.ctx_name, field=env.ptype.fields.get(off))
        if write and value is not None and value.is_pointer and not env.privileged:
            raise Reject(f"R{value_regno_of(value, regs)} leaks addr into ctx", "pointer-leak",
                         pc)
        if not write:
            if kind is None:
                result = RegState.scalar_unknown()
            elif kind == st.SOCK_COMMON_OR_NULL:
                result = RegState.pointer(kind)
                result.id = env.new_id()
            else:
                result = RegState.pointer(kind)
    elif t in st.PACKET_TYPES:
        if write and not env.ptype.direct_packet_write:
            raise Reject("cannot write into packet", "readonly-packet", pc, regno=regno)
        mem.check_packet(r, regno, r.off + off, size, False, pc)
        if not write:
            result = RegState.scalar_unknown()
    elif t == st.MAP_VALUE:
        spec = env.maps[r.map]
        if write and spec.flags & 0x80:
            raise Reject(f"write into map forbidden, value_size={spec.value_size} "
                         f"off={r.off + off} size={size}", "readonly-map", pc, regno=regno)
        mem.check_mem_region(r, regno, r.off + off, size, spec.value_size, False, pc)
        spinlock.check_direct_access(env, r, regno, off, size, pc)
        if not write:
            result = RegState.scalar_unknown()
    elif t in (st.MEM, st.RINGBUF_MEM, st.RDONLY_MEM):
        if write and t == st.RDONLY_MEM:
            raise Reject(f"R{regno} cannot write into {t}", "readonly-mem", pc, regno=regno)
        mem.check_mem_region(r, regno, r.off + off, size, r.mem_size, False, pc)
        if not write:
            result = RegState.scalar_unknown()
    elif t == st.MAP_KEY:
        if write:
            # check_mem_access: a map key (a for_each callback's R2) is read-only
            raise Reject(f"write to change key R{regno} not allowed", "readonly-mem", pc)
        mem.check_mem_region(r, regno, r.off + off, size, env.maps[r.map].key_size, False, pc)
        result = RegState.scalar_unknown()
    else:
        raise Reject(f"R{regno} invalid mem access '{mem.reg_type_str(r)}'",
                     "invalid-mem-access", pc, regno=regno, reg_type=t, origin=r.origin)
    if result is not None:
        result.origin = pc
        if result.type == st.SCALAR and size < 8:
            if sign_extend:
                bd.sign_extend(result, size)
            else:
                bd.truncate(result, size)
    return result


def value_regno_of(value: RegState, regs) -> int:
    for i, r in enumerate(regs):
        if r is value:
            return i
    return -1


def _ldx(env: Env, state: VerifierState, insn, pc: int) -> None:
    size = isa.SIZE_BYTES[insn.opcode & 0x18]
    regs = state.cur.regs
    _read_reg(regs, insn.src, pc)
    _check_dst(insn.dst, pc)
    sx = insn.opcode & 0xE0 == isa.MEMSX
    out = _mem_access(env, state, insn.src, insn.off, size, False, pc, sign_extend=sx)
    regs[insn.dst] = out


def _store(env: Env, state: VerifierState, insn, pc: int) -> None:
    size = isa.SIZE_BYTES[insn.opcode & 0x18]
    regs = state.cur.regs
    if insn.cls == isa.STX:
        value = _read_reg(regs, insn.src, pc)
        _read_reg(regs, insn.dst, pc)
        dst = regs[insn.dst]
        if value.is_pointer and not env.privileged and dst.type != st.STACK:
            raise Reject(f"R{insn.src} leaks addr into mem", "pointer-leak", pc,
                         regno=insn.src)
        _mem_access(env, state, insn.dst, insn.off, size, True, pc, value=value,
                    value_regno=insn.src)
    else:
        _read_reg(regs, insn.dst, pc)
        _mem_access(env, state, insn.dst, insn.off, size, True, pc, imm=insn.imm, is_st=True)


def _atomic(env: Env, state: VerifierState, insn, pc: int) -> None:
    size = isa.SIZE_BYTES[insn.opcode & 0x18]
    regs = state.cur.regs
    src = _read_reg(regs, insn.src, pc)
    dst = _read_reg(regs, insn.dst, pc)
    if insn.imm == isa.ATOMIC_CMPXCHG:
        _read_reg(regs, 0, pc)
        if regs[0].is_pointer and not env.privileged:
            raise Reject("R0 leaks addr into mem", "pointer-leak", pc)
    if src.is_pointer and not env.privileged:
        raise Reject(f"R{insn.src} leaks addr into mem", "pointer-leak", pc, regno=insn.src)
    if dst.type in (st.CTX, st.PACKET, st.PACKET_META) or dst.type not in (
            st.STACK, st.MAP_VALUE, st.MEM, st.RINGBUF_MEM):
        if dst.type in (st.CTX, st.PACKET, st.PACKET_META):
            raise Reject(f"BPF_ATOMIC stores into R{insn.dst} {dst.type} is not allowed",
                         "atomic-region", pc, regno=insn.dst)
    fetch_reg = 0 if insn.imm == isa.ATOMIC_CMPXCHG else insn.src
    loaded = _mem_access(env, state, insn.dst, insn.off, size, False, pc)
    if loaded is not None and loaded.is_pointer and insn.imm & isa.ATOMIC_FETCH:
        if not env.privileged:
            raise Reject(f"R{insn.dst} leaks addr into mem", "pointer-leak", pc)
    # the write of an atomic operation stores no register: misc bytes on the stack
    _mem_access(env, state, insn.dst, insn.off, size, True, pc)
    if insn.imm & isa.ATOMIC_FETCH:
        _check_dst(fetch_reg, pc)
        out = loaded if loaded is not None and loaded.type == st.SCALAR else _unknown(pc)
        if out.type == st.SCALAR and size < 8:
            bd.truncate(out, size)
        out.origin = pc
        regs[fetch_reg] = out


def _ld_abs(env: Env, state: VerifierState, insn, pc: int) -> None:
    regs = state.cur.regs
    if not env.ptype.ld_abs:
        raise Reject("BPF_LD_[ABS|IND] instructions not allowed for this program type",
                     "ld-abs-not-allowed", pc)
    if insn.dst or insn.off or (insn.opcode & 0xE0 == isa.ABS and insn.src):
        raise Reject("BPF_LD_[ABS|IND] uses reserved fields", "bad-insn", pc)
    if state.lock is not None:
        raise Reject("BPF_LD_[ABS|IND] cannot be used inside bpf_spin_lock-ed region",
                     "ld-abs-in-lock", pc)
    region = kfuncs.region_name(state)
    if region:
        raise Reject(f"BPF_LD_[ABS|IND] cannot be used inside {region}-ed region",
                     "ld-abs-in-lock", pc)
    r6 = _read_reg(regs, 6, pc)
    if insn.opcode & 0xE0 == isa.IND:
        _read_reg(regs, insn.src, pc)
    if r6.type != env.ptype.ctx_type:
        raise Reject("at the time of BPF_LD_ABS|IND R6 != pointer to skb", "ld-abs-ctx", pc)
    for i in range(1, 6):
        regs[i] = RegState()
    # check_ld_abs: R0 is an unknown scalar, the load's size is not used for its bounds
    regs[0] = _unknown(pc)


def _lddw(env: Env, state: VerifierState, insn, pc: int) -> None:
    regs = state.cur.regs
    _check_dst(insn.dst, pc)
    src = insn.src
    if src == isa.PSEUDO_IMM64:
        out = RegState(st.SCALAR)
        bd.mark_known(out, insn.imm64)
    elif src in (isa.PSEUDO_MAP_IDX, isa.PSEUDO_MAP_FD, isa.PSEUDO_MAP_IDX_VALUE,
                 isa.PSEUDO_MAP_VALUE):
        idx = insn.imm
        if not 0 <= idx < len(env.maps):
            raise Reject(f"fd {idx} is not pointing to valid bpf_map", "bad-map", pc)
        spinlock.check_map_use(env, idx, pc)
        if src in (isa.PSEUDO_MAP_IDX, isa.PSEUDO_MAP_FD):
            out = RegState.pointer(st.MAP_PTR, map=idx)
        else:
            spec = env.maps[idx]
            off = (insn.imm_hi or 0) & bd.U32
            if spec.type not in ("array",) or spec.max_entries != 1 and spec.type == "array" \
                    and False:
                pass
            if spec.type not in ("array",):
                raise Reject("map_direct_value_addr not supported for this map type",
                             "bad-map", pc)
            if off >= spec.value_size:
                raise Reject(f"direct value offset of {off} is not allowed", "bad-map", pc)
            out = RegState.pointer(st.MAP_VALUE, off, map=idx)
    elif src == isa.PSEUDO_FUNC:
        # check_ld_imm: callbacks need BTF func_info (and static linkage, see _func_linkage)
        if not env.program.func_info:
            raise Reject("missing btf func_info", "missing-func-info", pc)
        if not _callback_is_static(env, pc + 1 + insn.imm):
            raise Reject("callback function not static", "callback-not-static", pc)
        out = RegState.pointer(st.FUNC, subprog=pc + 1 + insn.imm)
    else:
        raise Reject("ld_imm64 of BTF ids (ksyms) is not supported by pybpf's verifier",
                     "unsupported", pc)
    out.origin = pc
    regs[insn.dst] = out


# --- branches ---------------------------------------------------------------------------------

def _is_const(r: RegState, is32: bool) -> bool:
    return (r.var_off.mask & bd.U32) == 0 if is32 else r.var_off.mask == 0


def _const_val(r: RegState, is32: bool) -> int:
    return r.var_off.value & bd.U32 if is32 else r.var_off.value


def _scalar_branch_taken(r1: RegState, r2: RegState, op: int, is32: bool) -> int:
    if is32:
        t1, t2 = tn.subreg(r1.var_off), tn.subreg(r2.var_off)
        umin1, umax1, umin2, umax2 = r1.u32min, r1.u32max, r2.u32min, r2.u32max
        smin1, smax1, smin2, smax2 = r1.s32min, r1.s32max, r2.s32min, r2.s32max
    else:
        t1, t2 = r1.var_off, r2.var_off
        umin1, umax1, umin2, umax2 = r1.umin, r1.umax, r2.umin, r2.umax
        smin1, smax1, smin2, smax2 = r1.smin, r1.smax, r2.smin, r2.smax
    if op in (isa.JEQ, isa.JNE):
        eq_res = -1
        if t1.mask == 0 and t2.mask == 0:
            eq_res = 1 if t1.value == t2.value else 0
        elif (t1.value ^ t2.value) & ~(t1.mask | t2.mask):
            eq_res = 0
        elif umin1 > umax2 or umax1 < umin2 or smin1 > smax2 or smax1 < smin2:
            eq_res = 0
        elif not is32 and (r1.u32min > r2.u32max or r1.u32max < r2.u32min or
                           r1.s32min > r2.s32max or r1.s32max < r2.s32min):
            eq_res = 0
        if eq_res < 0:
            return -1
        return eq_res if op == isa.JEQ else 1 - eq_res
    if op == isa.JSET:
        if not _is_const(r2, is32):
            r1, r2 = r2, r1
            t1, t2 = t2, t1
        if not _is_const(r2, is32):
            return -1
        if (~t1.mask & t1.value) & t2.value:
            return 1
        if not ((t1.mask | t1.value) & t2.value):
            return 0
        return -1
    table = {
        isa.JGT: (umin1 > umax2, umax1 <= umin2), isa.JSGT: (smin1 > smax2, smax1 <= smin2),
        isa.JLT: (umax1 < umin2, umin1 >= umax2), isa.JSLT: (smax1 < smin2, smin1 >= smax2),
        isa.JGE: (umin1 >= umax2, umax1 < umin2), isa.JSGE: (smin1 >= smax2, smax1 < smin2),
        isa.JLE: (umax1 <= umin2, umin1 > umax2), isa.JSLE: (smax1 <= smin2, smin1 > smax2),
    }
    yes, no = table[op]
    return 1 if yes else 0 if no else -1


_PKT_ANY = (st.PACKET, st.PACKET_META, st.PACKET_END)
#: pointer types the kernel knows are never NULL (``reg_not_null``)
_NOT_NULL = {st.MAP_VALUE, st.MAP_KEY, st.MEM, st.RINGBUF_MEM, st.RDONLY_MEM, st.MAP_PTR}


def _branch_taken(r1: RegState, r2: RegState, op: int, is32: bool) -> int:
    p1, p2 = r1.is_pointer, r2.is_pointer
    if p1 and p2:
        if not is32 and r1.type in _PKT_ANY and r2.type in _PKT_ANY:
            return _pkt_branch_taken(r1, r2, op)
        return -1
    if p1 or p2:
        if not _is_const(r2, is32):
            op = _FLIP[op]
            r1, r2 = r2, r1
        if not _is_const(r2, is32):
            return -1
        if r1.type not in _NOT_NULL:
            return -1
        if _const_val(r2, is32) != 0:
            return -1
        if op == isa.JEQ:
            return 0
        if op == isa.JNE:
            return 1
        return -1
    return _scalar_branch_taken(r1, r2, op, is32)


def _refine(r1: RegState, r2: RegState, op: int, is32: bool) -> None:
    """``regs_refine_cond_op``: learn from ``r1 <op> r2`` being true."""
    if op in (isa.JGE, isa.JGT, isa.JSGE, isa.JSGT):
        op = _FLIP[op]
        r1, r2 = r2, r1
    if op == isa.JEQ:
        if is32:
            r1.u32min = r2.u32min = max(r1.u32min, r2.u32min)
            r1.u32max = r2.u32max = min(r1.u32max, r2.u32max)
            r1.s32min = r2.s32min = max(r1.s32min, r2.s32min)
            r1.s32max = r2.s32max = min(r1.s32max, r2.s32max)
            t = tn.intersect(tn.subreg(r1.var_off), tn.subreg(r2.var_off))
            r1.var_off = tn.with_subreg(r1.var_off, t)
            r2.var_off = tn.with_subreg(r2.var_off, t)
        else:
            r1.umin = r2.umin = max(r1.umin, r2.umin)
            r1.umax = r2.umax = min(r1.umax, r2.umax)
            r1.smin = r2.smin = max(r1.smin, r2.smin)
            r1.smax = r2.smax = min(r1.smax, r2.smax)
            r1.var_off = r2.var_off = tn.intersect(r1.var_off, r2.var_off)
    elif op == isa.JNE:
        if not _is_const(r2, is32):
            r1, r2 = r2, r1
        if not _is_const(r2, is32):
            return False
        val = _const_val(r2, is32)
        if is32:
            if r1.u32min == val:
                r1.u32min += 1
            if r1.u32max == val:
                r1.u32max -= 1
            if r1.s32min == bd.s32(val):
                r1.s32min += 1
            if r1.s32max == bd.s32(val):
                r1.s32max -= 1
        else:
            if r1.umin == val:
                r1.umin += 1
            if r1.umax == val:
                r1.umax -= 1
            if r1.smin == bd.s64(val):
                r1.smin += 1
            if r1.smax == bd.s64(val):
                r1.smax -= 1
    elif op == isa.JSET:
        if not _is_const(r2, is32):
            r1, r2 = r2, r1
        if not _is_const(r2, is32):
            return False
        val = _const_val(r2, is32)
        if not val or val & (val - 1):
            return False
        if is32:
            t = tn.or_(tn.subreg(r1.var_off), tn.const(val))
            r1.var_off = tn.with_subreg(r1.var_off, t)
        else:
            r1.var_off = tn.or_(r1.var_off, tn.const(val))
    elif op == JSET_NOT:
        if not _is_const(r2, is32):
            r1, r2 = r2, r1
        if not _is_const(r2, is32):
            return False
        val = _const_val(r2, is32)
        bd.mark_unbounded64(r1)
        bd.mark_unbounded32(r1)
        if is32:
            t = tn.and_(tn.subreg(r1.var_off), tn.const(~val & bd.U32))
            r1.var_off = tn.with_subreg(r1.var_off, t)
        else:
            r1.var_off = tn.and_(r1.var_off, tn.const(~val & bd.U64))
    elif op == isa.JLE:
        if is32:
            r1.u32max = min(r1.u32max, r2.u32max)
            r2.u32min = max(r1.u32min, r2.u32min)
        else:
            r1.umax = min(r1.umax, r2.umax)
            r2.umin = max(r1.umin, r2.umin)
    elif op == isa.JLT:
        if is32:
            r1.u32max = min(r1.u32max, (r2.u32max - 1) & bd.U32)
            r2.u32min = max((r1.u32min + 1) & bd.U32, r2.u32min)
        else:
            r1.umax = min(r1.umax, (r2.umax - 1) & bd.U64)
            r2.umin = max((r1.umin + 1) & bd.U64, r2.umin)
    elif op == isa.JSLE:
        if is32:
            r1.s32max = min(r1.s32max, r2.s32max)
            r2.s32min = max(r1.s32min, r2.s32min)
        else:
            r1.smax = min(r1.smax, r2.smax)
            r2.smin = max(r1.smin, r2.smin)
    elif op == isa.JSLT:
        if is32:
            r1.s32max = min(r1.s32max, bd.s32(r2.s32max - 1))
            r2.s32min = max(bd.s32(r1.s32min + 1), r2.s32min)
        else:
            r1.smax = min(r1.smax, bd.s64(r2.smax - 1))
            r2.smin = max(bd.s64(r1.smin + 1), r2.smin)


def _set_min_max(t1: RegState, t2: RegState, f1: RegState, f2: RegState, op: int,
                 is32: bool, fake_src: bool) -> tuple[bool, bool]:
    """Refine both sides; returns whether each side (true, false) is still possible.
    ``fake_src``: the second operand is an immediate, nothing to keep of it."""
    if f1.type != st.SCALAR or f2.type != st.SCALAR:
        return True, True
    ok = [True, True]
    for i, (a, b, o) in enumerate(((f1, f2, _REV[op]), (t1, t2, op))):
        if _refine(a, b, o, is32) is False:
            continue
        bd.sync(a)
        if not bd.is_valid(a):
            ok[i] = False
        if not fake_src:
            bd.sync(b)
            if not bd.is_valid(b):
                ok[i] = False
    return ok[1], ok[0]


def _note_linked(state: VerifierState, dst: RegState, src: RegState | None) -> None:
    """``collect_linked_regs``: record, for backtracking, the registers and spilled scalars
    sharing an id with the compared scalars (a bounds check refines all of them)."""
    base = ~st.ADD_CONST
    ids = {r.id & base for r in (dst, src) if r is not None and r.type == st.SCALAR and r.id}
    if not ids or not state.trace:
        return
    linked = []
    for fi, f in enumerate(state.frames):
        for i, r in enumerate(f.regs):
            if r.type == st.SCALAR and r.id & base in ids:
                linked.append((fi, i))
        for spi, slot in f.stack.items():
            sp = slot.spilled
            if sp is not None and sp.type == st.SCALAR and sp.id & base in ids:
                linked.append((fi, -1 - spi))
    if len(linked) > 1:
        e = state.trace[-1]
        pc = e if e.__class__ is int else e[0]
        stack = None if e.__class__ is int else e[1]
        state.trace[-1] = (pc, stack, tuple(linked))


_BOUNDS = ("var_off", "smin", "smax", "umin", "umax", "s32min", "s32max", "u32min",
           "u32max")


def _sync_linked(state: VerifierState, reg: RegState) -> None:
    """``sync_linked_regs``: scalars sharing an id get the refined bounds; one linked
    through ``+= const`` gets them shifted by the difference of the deltas."""
    base = reg.id & ~st.ADD_CONST
    for r in state.all_regs():
        if r is reg or r.type != st.SCALAR or r.id & ~st.ADD_CONST != base:
            continue
        if not (r.id & st.ADD_CONST or reg.id & st.ADD_CONST) or r.off == reg.off:
            for f in _BOUNDS:
                setattr(r, f, getattr(reg, f))
            r.precise = reg.precise
            continue
        delta = r.off - reg.off
        for f in _BOUNDS:
            setattr(r, f, getattr(reg, f))
        r.precise = reg.precise
        bd.alu(r, RegState.scalar_const(delta), isa.ADD, False)
        if (reg.id | r.id) & st.ADD_CONST32:
            # a 32-bit link: the values agree in their low 32 bits, zero-extended
            bd.zext_32_to_64(r)
            bd.sync(r)


MAP_IN_MAP = ("array_of_maps", "hash_of_maps")


def _mark_ptr_or_null(env, state: VerifierState, regno: int, is_null: bool) -> None:
    reg = state.cur.regs[regno]
    rid, ref = reg.id, reg.ref_obj_id
    # only a pointer that is itself the reference (a ring buffer record) releases it when
    # null; a dynptr slice shares its dynptr's reference, which stays (mark_ptr_or_null_regs)
    if is_null and ref and ref == rid:
        state.refs.pop(ref, None)
    for r in state.all_regs():
        if r.type in st.NULLABLE and r.id == rid:
            if is_null:
                z = RegState.scalar_const(0)
                z.origin = r.origin
                for f in RegState.__slots__:
                    setattr(r, f, getattr(z, f))
            else:
                r.type = st.NULLABLE[r.type]
                if r.type == st.MAP_VALUE and env.maps[r.map].type in MAP_IN_MAP:
                    # a map-of-maps value is the inner map (the kernel's CONST_PTR_TO_MAP to
                    # inner_map_meta): lookups through it use the inner map's template
                    inner = env.inner_map(r.map)
                    for f in RegState.__slots__:
                        setattr(r, f, getattr(RegState.pointer(st.MAP_PTR, map=inner), f))
                    continue
                # a value holding a spin lock keeps its id: the lock is (map, id)
                if not (r.type == st.MAP_VALUE and r.map in env.lock_offs):
                    r.id = 0


def _find_good_pkt_pointers(state: VerifierState, dst: RegState, range_right_open: bool) -> None:
    if dst.off < 0 or (dst.off == 0 and range_right_open):
        return
    if dst.umax > mem.MAX_PACKET_OFF or dst.umax + dst.off > mem.MAX_PACKET_OFF:
        return
    new_range = dst.off + (1 if range_right_open else 0)
    for r in state.all_regs():
        if r.type == dst.type and r.id == dst.id:
            r.range = max(r.range, new_range)


def _is_init_pkt(r: RegState) -> bool:
    return r.type == st.PACKET and r.off == 0 and r.var_off.mask == 0 and r.var_off.value == 0


def _pkt_compare(this: VerifierState, other: VerifierState, insn, op: int) -> bool:
    """``try_match_pkt_pointers``: comparisons of packet pointers with the packet end."""
    if not insn.opcode & isa.X or insn.cls == isa.JMP32:
        return False
    d, s = this.cur.regs[insn.dst], this.cur.regs[insn.src]
    od, os_ = other.cur.regs[insn.dst], other.cur.regs[insn.src]
    fwd = (d.type == st.PACKET and s.type == st.PACKET_END) or \
        (d.type == st.PACKET_META and _is_init_pkt(s))
    rev = (d.type == st.PACKET_END and s.type == st.PACKET) or \
        (_is_init_pkt(d) and s.type == st.PACKET_META)
    # this: the fall-through (condition false), other: the jump (condition true); the
    # pointer proven at or beyond pkt_end on one side gets the kernel's marker range
    if op == isa.JGT:
        if fwd:
            _find_good_pkt_pointers(this, d, False)
            _mark_pkt_end(other, insn.dst, True)
        elif rev:
            _find_good_pkt_pointers(other, os_, True)
            _mark_pkt_end(this, insn.src, False)
        else:
            return False
    elif op == isa.JLT:
        if fwd:
            _find_good_pkt_pointers(other, od, True)
            _mark_pkt_end(this, insn.dst, False)
        elif rev:
            _find_good_pkt_pointers(this, s, False)
            _mark_pkt_end(other, insn.src, True)
        else:
            return False
    elif op == isa.JGE:
        if fwd:
            _find_good_pkt_pointers(this, d, True)
            _mark_pkt_end(other, insn.dst, False)
        elif rev:
            _find_good_pkt_pointers(other, os_, False)
            _mark_pkt_end(this, insn.src, True)
        else:
            return False
    elif op == isa.JLE:
        if fwd:
            _find_good_pkt_pointers(other, od, False)
            _mark_pkt_end(this, insn.dst, True)
        elif rev:
            _find_good_pkt_pointers(this, s, True)
            _mark_pkt_end(other, insn.src, False)
        else:
            return False
    else:
        return False
    return True


#: ``range`` markers of a packet pointer known to be at (or beyond) pkt_end
AT_PKT_END, BEYOND_PKT_END = -1, -2


def _mark_pkt_end(state: VerifierState, regno: int, range_open: bool) -> None:
    """``mark_pkt_end``: the compared packet pointer (not pkt_meta) is beyond pkt_end, or
    at it; no byte at it may be read, and a second comparison with pkt_end is decided."""
    r = state.cur.regs[regno]
    if r.type == st.PACKET:
        r.range = BEYOND_PKT_END if range_open else AT_PKT_END


def _pkt_branch_taken(dst: RegState, src: RegState, op: int) -> int:
    """``is_pkt_ptr_branch_taken``: a comparison with pkt_end of a pointer known to be at or
    beyond it."""
    if src.type == st.PACKET_END:
        pkt = dst
    elif dst.type == st.PACKET_END:
        pkt = src
        op = _FLIP[op]
    else:
        return -1
    if pkt.range >= 0:
        return -1
    if op in (isa.JLE, isa.JGT) and pkt.range == BEYOND_PKT_END:
        return int(op == isa.JGT)
    if op in (isa.JLT, isa.JGE):
        return int(op == isa.JGE)
    return -1


def _const_branch(a: int, imm: int, op: int, is32: bool) -> int:
    if is32:
        a &= bd.U32
        b = imm & bd.U32
        sa, sb = bd.s32(a), bd.s32(b)
    else:
        b = imm & bd.U64
        sa, sb = bd.s64(a), bd.s64(b)
    return int(_CONST_CMP[op](a, b, sa, sb))


_CONST_CMP = {
    isa.JEQ: lambda a, b, sa, sb: a == b, isa.JNE: lambda a, b, sa, sb: a != b,
    isa.JGT: lambda a, b, sa, sb: a > b, isa.JGE: lambda a, b, sa, sb: a >= b,
    isa.JLT: lambda a, b, sa, sb: a < b, isa.JLE: lambda a, b, sa, sb: a <= b,
    isa.JSET: lambda a, b, sa, sb: bool(a & b), isa.JSGT: lambda a, b, sa, sb: sa > sb,
    isa.JSGE: lambda a, b, sa, sb: sa >= sb, isa.JSLT: lambda a, b, sa, sb: sa < sb,
    isa.JSLE: lambda a, b, sa, sb: sa <= sb,
}


def _cond_jmp(env: Env, state: VerifierState, insn, pc: int):
    """Returns the list of (state, next_pc) successors; ``state`` continues as the first."""
    regs = state.frames[-1].regs
    op = insn.opcode & 0xF0
    is32 = insn.cls == isa.JMP32
    dst = regs[insn.dst]
    if dst.type == st.SCALAR and dst.var_off.mask == 0 and not insn.opcode & isa.X:
        # fast path: constant compared with an immediate decides the branch
        pred = _const_branch(dst.var_off.value, insn.imm, op, is32)
        precision.mark_regs(env, state, (insn.dst,))
        nxt = pc + 1 if pred == 0 else insn.jump_target(pc)
        state.history = (pc, nxt, state.history)
        return [(state, nxt)]
    dst = _read_reg(regs, insn.dst, pc)
    if insn.opcode & isa.X:
        src = _read_reg(regs, insn.src, pc)
        if src.is_pointer and not env.privileged and not (
                dst.type in st.PACKET_TYPES + (st.PACKET_END,)):
            raise Reject(f"R{insn.src} pointer comparison prohibited", "pointer-compare", pc)
    else:
        src = RegState(st.SCALAR)
        bd.mark_known(src, insn.imm if not is32 else insn.imm & bd.U32)
        if is32:
            src.var_off = tn.const(insn.imm & bd.U64)
            bd.mark_known(src, insn.imm)
    if dst.is_pointer and not env.privileged and not insn.opcode & isa.X and \
            not (dst.type in st.NULLABLE and insn.imm == 0):
        raise Reject(f"R{insn.dst} pointer comparison prohibited", "pointer-compare", pc)
    target = insn.jump_target(pc)
    nxt = pc + 1
    pred = _branch_taken(dst, src, op, is32)
    if pred >= 0:
        # the decided branch depends on the exact ranges of the operands
        precision.mark_regs(env, state, (insn.dst,))
        if insn.opcode & isa.X:
            precision.mark_regs(env, state, (insn.src,))   # a walk of its own, as the kernel
    if pred == 1:
        state.history = (pc, target, state.history)
        return [(state, target)]
    if pred == 0:
        state.history = (pc, nxt, state.history)
        return [(state, nxt)]
    _note_linked(state, dst, src if insn.opcode & isa.X else None)
    other = state.copy()
    oregs = other.cur.regs
    if insn.opcode & isa.X:
        osrc = oregs[insn.src]
    else:
        osrc = src.copy()
    odst = oregs[insn.dst]
    if dst.type == st.SCALAR and src.type == st.SCALAR:
        t_ok, f_ok = _set_min_max(odst, osrc, dst, src, op, is32,
                                  not insn.opcode & isa.X)
    else:
        t_ok = f_ok = True
    if insn.opcode & isa.X and src.type == st.SCALAR and src.id:
        _sync_linked(state, src)
        _sync_linked(other, osrc)
    if dst.type == st.SCALAR and dst.id:
        _sync_linked(state, dst)
        _sync_linked(other, odst)
    if not is32 and not insn.opcode & isa.X and insn.imm == 0 and op in (isa.JEQ, isa.JNE) \
            and dst.type in st.NULLABLE:
        _mark_ptr_or_null(env, state, insn.dst, op == isa.JNE)
        _mark_ptr_or_null(env, other, insn.dst, op == isa.JEQ)
    else:
        _pkt_compare(state, other, insn, op)
    state.history = (pc, nxt, state.history)
    other.history = (pc, target, other.history)
    out = []
    if f_ok:
        out.append((state, nxt))
    if t_ok:
        out.append((other, target))
    return out


# --- calls and exits --------------------------------------------------------------------------

def _pseudo_call(env: Env, state: VerifierState, insn, pc: int) -> int:
    if len(state.frames) >= MAX_CALL_FRAMES:
        raise Reject(f"the call stack of {len(state.frames) + 1} frames is too deep",
                     "call-depth", pc)
    target = pc + 1 + insn.imm
    sub = env.layout.subprog_of[target]
    caller = state.cur
    callee = FuncState(len(state.frames), sub, pc)
    for i in range(1, 6):
        callee.regs[i] = caller.regs[i]
    # clear_caller_saved_regs: r0-r5 of the caller are dead (the arguments now live in the
    # callee's frame)
    for i in range(6):
        caller.regs[i] = RegState()
    fp = RegState.pointer(st.STACK, frameno=callee.frameno)
    callee.regs[10] = fp
    state.frames.append(callee)
    state.history = (pc, target, state.history)
    log = env.log
    if log.level:
        log.line("caller:")
        log.line(frame_text(state, len(state.frames) - 2, log.maps))
        log.line("callee:")
        log.line(frame_text(state, len(state.frames) - 1, log.maps))
    return target


def _exit(env: Env, state: VerifierState, pc: int) -> int | None:
    """Returns the pc to continue at after a subprogram exit, or None at program exit."""
    regs = state.cur.regs
    if state.cur.in_callback:
        return callback_exit(env, state, pc)
    if len(state.frames) > 1:
        r0 = regs[0]
        if r0.type == st.STACK:
            raise Reject("cannot return stack pointer to the caller", "return-stack-ptr", pc)
        callee = state.frames[-1]
        caller = state.frames[-2]
        caller.regs[0] = r0
        for i in range(1, 6):
            caller.regs[i] = RegState()
        log = env.log
        if log.level:
            log.line("returning from callee:")
            log.line(frame_text(state, len(state.frames) - 1, log.maps))
            log.line(f"to caller at {callee.callsite + 1}:")
            log.line(frame_text(state, len(state.frames) - 2, log.maps))
        state.frames.pop()
        return callee.callsite + 1
    if state.lock is not None:
        raise Reject("BPF_EXIT instruction in main prog cannot be used inside "
                     "bpf_spin_lock-ed region", "exit-in-lock", pc)
    if state.refs:
        rid, at = next(iter(state.refs.items()))
        raise Reject(f"Unreleased reference id={rid} alloc_insn={at}\nBPF_EXIT instruction "
                     f"in main prog would lead to reference leak", "reference-leak", pc,
                     alloc_pc=at)
    region = kfuncs.region_name(state)
    if region:
        raise Reject(f"BPF_EXIT instruction in main prog cannot be used inside {region}-ed "
                     "region", "exit-in-lock", pc)
    r0 = regs[0]
    if r0.type == st.NOT_INIT:
        raise Reject("R0 !read_ok", "uninit-return", pc, regno=0)
    if r0.is_pointer and not env.privileged:
        raise Reject("R0 leaks addr as return value", "return-pointer", pc, reg_type=r0.type)
    return None


# --- state equivalence (pruning) --------------------------------------------------------------

def _range_within(old: RegState, cur: RegState) -> bool:
    return (old.umin <= cur.umin and cur.umax <= old.umax and old.smin <= cur.smin and
            cur.smax <= old.smax and old.u32min <= cur.u32min and cur.u32max <= old.u32max and
            old.s32min <= cur.s32min and cur.s32max <= old.s32max)


def _check_ids(old_id: int, cur_id: int, idmap: dict, rev: dict) -> bool:
    if not old_id and not cur_id:
        return True
    if not old_id or not cur_id:
        return False
    a = idmap.get(old_id)
    b = rev.get(cur_id)
    if a is None and b is None:
        idmap[old_id] = cur_id
        rev[cur_id] = old_id
        return True
    return a == cur_id and b == old_id


def _check_scalar_ids(old_id: int, cur_id: int, idmap: dict, rev: dict) -> bool:
    """``check_scalar_ids``: an id of 0 stands for a fresh id of its own, so two unlinked
    old scalars may not map to one linked pair in the current state."""
    if not old_id or not cur_id:
        tmp = idmap.get(None, 0) - 1
        idmap[None] = tmp
        old_id = old_id or tmp
        cur_id = cur_id or tmp - (1 << 40)
    return _check_ids(old_id, cur_id, idmap, rev)


#: ``enum exact_level``: compare imprecise scalars too (in-progress states of a loop)
NOT_EXACT, RANGE_WITHIN = 0, 1


def _regsafe(old: RegState, cur: RegState, idmap: dict, rev: dict, exact: int = NOT_EXACT
             ) -> bool:
    if old.type == st.NOT_INIT:
        return True
    if cur.type != old.type:
        return False
    if old.type == st.SCALAR:
        if not old.precise and exact == NOT_EXACT:
            return True
        if (old.id ^ cur.id) & st.ADD_CONST or old.id & st.ADD_CONST and old.off != cur.off:
            return False
        return _range_within(old, cur) and old.var_off.contains(cur.var_off) and \
            _check_scalar_ids(old.id, cur.id, idmap, rev)
    if old.off != cur.off or old.map != cur.map or old.frameno != cur.frameno or \
            old.mem_size != cur.mem_size or old.subprog != cur.subprog:
        return False
    if old.type in st.PACKET_TYPES and cur.range < old.range:
        return False
    if not _check_ids(old.id, cur.id, idmap, rev):
        return False
    if not _check_ids(old.ref_obj_id, cur.ref_obj_id, idmap, rev):
        return False
    return _range_within(old, cur) and old.var_off.contains(cur.var_off)


_UNBOUND = RegState.scalar_unknown()


def _scalar_for_stack(env: Env, slot) -> RegState | None:
    """``scalar_reg_for_stack``: a full spilled scalar, or an unknown scalar for a slot of
    misc (for root also uninitialised) bytes."""
    if slot is None:
        return _UNBOUND if env.privileged else None
    if slot.types[0] == st.SPILL and slot.spilled is not None and \
            slot.spilled.type == st.SCALAR:
        return slot.spilled
    for t in slot.types:
        if t != st.MISC and not (t == st.INVALID and env.privileged):
            return None
    return _UNBOUND


def _stacksafe(env: Env, old: FuncState, cur: FuncState, idmap: dict, rev: dict,
               exact: int = NOT_EXACT, live: int = -1) -> bool:
    """``stacksafe``: every byte the old state relied on is at least as good now; slots
    not in ``live`` (never read again before being overwritten, stacklive.py) are skipped,
    as the kernel skips dead slots."""
    priv = env.privileged
    cur_alloc = (cur.allocated + 7) // 8 * 8
    for spi, oslot in old.stack.items():
        if not live >> spi & 1:
            continue
        cslot = cur.stack.get(spi)
        ctypes = cslot.types if cslot is not None else st.INVALID * 8
        otypes = oslot.types
        if otypes[0] == st.DYNPTR and oslot.spilled is not None:
            # a dynptr: same kind and slot, a consistent reference (stacksafe's STACK_DYNPTR)
            if cslot is None or ctypes != otypes or cslot.spilled is None or \
                    oslot.spilled.map != cslot.spilled.map or \
                    oslot.spilled.range != cslot.spilled.range or \
                    not _check_ids(oslot.spilled.ref_obj_id, cslot.spilled.ref_obj_id,
                                   idmap, rev):
                return False
            continue
        if otypes[0] == st.ITER:
            # an iterator: same state and a consistent reference, any depth (stacksafe's
            # STACK_ITER case)
            if cslot is None or ctypes[0] != st.ITER or cslot.spilled is None or \
                    oslot.spilled.iter_state != cslot.spilled.iter_state or \
                    not _check_ids(oslot.spilled.ref_obj_id, cslot.spilled.ref_obj_id,
                                   idmap, rev):
                return False
            continue
        for i in range(8):
            ot = otypes[i]
            if ot == st.INVALID:
                continue
            if ot == st.MISC and priv:
                continue
            if spi * 8 + i >= cur_alloc:
                return False
            oreg = _scalar_for_stack(env, oslot)
            creg = _scalar_for_stack(env, cslot) if oreg is not None else None
            if oreg is not None and creg is not None:
                if not _regsafe(oreg, creg, idmap, rev, exact):
                    return False
                break
            ct = ctypes[i]
            if ot == st.MISC and ct == st.ZERO:
                continue
            if ot != ct:
                return False
            if i != 7:
                continue
            if ot == st.SPILL:
                if oslot.spilled is None:
                    if cslot is None or cslot.spilled is not None:
                        return False
                    continue
                if cslot is None or cslot.spilled is None:
                    return False
                if not _regsafe(oslot.spilled, cslot.spilled, idmap, rev, exact):
                    return False
    return True


def _live_masks(env: Env, state: VerifierState, pc: int) -> list[int]:
    """Registers compared per frame: live before ``pc`` in the innermost frame, live before
    the call instruction in the callers (``frame_insn_idx``); r10 always."""
    live_in = env.layout.live_in
    frames = state.frames
    out = []
    for fi in range(len(frames)):
        ip = pc if fi == len(frames) - 1 else frames[fi + 1].callsite
        out.append(live_in[ip] | 1 << 10)
    return out


def _stack_live_masks(env: Env, state: VerifierState, pc: int) -> list[int]:
    """Stack slots compared per frame: live before ``pc`` in the innermost frame, live
    before the call instruction in the callers (which counts what a callee may read
    through pointers it is given)."""
    frames = state.frames
    if not any(f.stack for f in frames):
        return [-1] * len(frames)
    stack_live = env.layout.stack_live
    return [stack_live[pc if fi == len(frames) - 1 else frames[fi + 1].callsite]
            for fi in range(len(frames))]


def _in_progress_hit(env: Env, open_sites: list, state: VerifierState, pc: int,
                     accept=None):
    """A visit of ``pc`` still being explored that contains ``state`` (RANGE_WITHIN), among
    the latest CALLBACK_CMP there only: comparing with every earlier one would make a loop
    that never converges quadratic (fewer comparisons only prune less). ``accept`` narrows
    which visits count as a hit (they still count towards the limit)."""
    seen = 0
    for cp in reversed(open_sites):
        if cp.key[0] != pc:
            continue
        seen += 1
        if (accept is None or accept(cp)) and \
                _states_equal(env, cp.state, state, pc, RANGE_WITHIN):
            return cp
        if seen == CALLBACK_CMP:
            return None
    return None


def _backedge(env: Env, hit, state: VerifierState, pc: int) -> None:
    """Record ``state`` as a back-edge into the loop ``hit`` belongs to (its precision is
    propagated when the loop's exploration ends)."""
    (hit.entry or hit).backedges.append((hit.state, state, _live_masks(env, hit.state, pc)))


def _log_safe(log, pc: int, popped):
    """The kernel's level-2 line for a pruned path: ``from A to B: safe`` right after a
    state was popped, else ``B: safe``; returns the new ``popped`` (cleared once printed)."""
    log.pending = None
    if log.level >= 2:
        if popped is not None:
            log.parts.append(f"\nfrom {popped} to {pc}: safe\n")
            return None
        log.line(f"{pc}: safe")
    return popped


def _states_equal(env: Env, old: VerifierState, cur: VerifierState, pc: int,
                  exact: int = NOT_EXACT) -> bool:
    if len(old.frames) != len(cur.frames):
        return False
    if len(old.refs) != len(cur.refs) or old.lock != cur.lock or old.rcu != cur.rcu or \
            old.preempt != cur.preempt:
        return False
    if not env.privileged:
        exact = RANGE_WITHIN   # unprivileged: every scalar is precise
    idmap: dict = {}
    rev: dict = {}
    # ``refsafe``: the acquired references pair up in order under the same id mapping as
    # the registers (a record reserved on another loop iteration has another id)
    for oid, cid in zip(old.refs, cur.refs):
        if not _check_ids(oid, cid, idmap, rev):
            return False
    masks = _live_masks(env, old, pc)
    smasks = _stack_live_masks(env, old, pc)
    for fi, (of, cf) in enumerate(zip(old.frames, cur.frames)):
        if of.callsite != cf.callsite or of.callback_depth > cf.callback_depth:
            return False
        live = masks[fi]
        oregs, cregs = of.regs, cf.regs
        for i in range(11):
            if not live >> i & 1:
                continue
            if not _regsafe(oregs[i], cregs[i], idmap, rev, exact):
                return False
        if not _stacksafe(env, of, cf, idmap, rev, exact, smasks[fi]):
            return False
    return True


#: in-progress states a callback's return to its call site is compared with
CALLBACK_CMP = 8


def _fingerprint(state: VerifierState) -> tuple:
    """A cheap summary of the innermost frame for the infinite-loop check."""
    return tuple([r.var_off for r in state.frames[-1].regs])


# --- the walk ---------------------------------------------------------------------------------

def initial_state(env: Env) -> VerifierState:
    s = VerifierState()
    f = FuncState(0, 0, -1)
    if env.ptype.ctx_type == st.MEM:
        f.regs[1] = RegState.pointer(st.MEM, mem_size=env.data_size)
        f.regs[2] = RegState.scalar_const(env.data_size)
    else:
        f.regs[1] = RegState.pointer(st.CTX)
    f.regs[10] = RegState.pointer(st.STACK, frameno=0)
    s.frames.append(f)
    return s


def do_check(env: Env) -> None:
    """Walk every path; raise :class:`Reject` on the first unsafe instruction."""
    import gc
    enabled = gc.isenabled()
    gc.disable()   # states hold no reference cycles; collection passes only cost time
    try:
        _do_check(env)
    finally:
        if enabled:
            gc.enable()


def _scc_chain(env: Env, state: VerifierState, pc: int):
    """``compute_scc_callchain``: the call sites down to the first frame whose instruction
    lies in a loop, and that loop's number; None outside loops."""
    loops = env.loop_ids
    if loops is None:
        from .cfg import loop_ids
        loops = env.loop_ids = loop_ids(env.layout)
    sites = []
    frames = state.frames
    for i in range(len(frames)):
        ip = pc if i == len(frames) - 1 else frames[i + 1].callsite
        if loops[ip]:
            return tuple(sites), loops[ip]
        if i == len(frames) - 1:
            return None
        sites.append(ip)
    return None


def _scc_text(chain) -> str:
    sites, scc = chain
    return "(" + "".join(f"{c}," for c in sites) + f"{scc})"


def _unlist_open(open_keys: dict, open_at: dict, open_by_pc: dict, cp: Checkpoint) -> None:
    """Take an in-progress checkpoint out of the lookups of open states."""
    pc = cp.key[0]
    same = open_keys[cp.key]
    same.remove(cp)
    if not same:
        del open_keys[cp.key]
    open_at[pc] -= 1
    here = open_by_pc.get(pc)
    if here and cp in here:
        here.remove(cp)


def _close(env: Env, cp: Checkpoint) -> None:
    """A checkpoint's subtree is fully explored. When it was a callback loop's entry, the
    precision its pruned revisits (back-edges) need is propagated until nothing changes
    (the kernel's ``propagate_backedges`` at the loop's exit)."""
    if cp.backedges:
        changed = True
        rounds = 0
        while changed:
            changed = False
            rounds += 1
            for old, cur, masks in cp.backedges:
                if rounds > 64:
                    precision.mark_all_precise(cur)   # give up on the fixpoint: all precise
                elif precision.propagate(env, old, cur, masks):
                    changed = True
        cp.backedges = None


def _defer_iteration(state, queued, insn, pc: int, start, open_sites: list, pending: list,
                     log, *, same_depth: bool) -> None:
    """Queue ``queued`` -- the path that runs one more iteration of a loop ended by
    ``may_goto`` or an iterator's ``next`` at ``pc`` -- to be explored after the current one,
    with the imprecise scalars that changed since the previous visit of ``pc`` (in the same
    frames) widened (the kernel's find_prev_entry and widen_imprecise_scalars). The newest
    open checkpoint of this very visit is skipped; for ``may_goto`` (``same_depth``) only a
    checkpoint at the same may_goto depth is this visit's."""
    sites = [f.callsite for f in state.frames]
    seen_self = False
    for cp in reversed(open_sites):
        if cp.key[0] == pc and [f.callsite for f in cp.state.frames] == sites:
            if not seen_self and (not same_depth
                                  or cp.state.may_goto_depth == state.may_goto_depth) \
                    and cp is open_sites[-1] and cp.k == len(pending):
                seen_self = True   # the checkpoint of this very visit
                continue
            precision.widen_imprecise(cp.state, queued)
            break
    if log.level >= 2:
        log.insn(pc, insn, state, start, pc)
    elif log.level:
        log.parts.append(f"{pc}: {log_insn_text(insn, pc)}\n")
    pending.append((queued, pc + 1, pc, len(log.parts)))
    if len(pending) > JMP_SEQ_LIMIT:
        raise Reject(f"The sequence of {len(pending)} jumps is too complex.", "too-complex", pc)


def _do_check(env: Env) -> None:
    layout = env.layout
    insns = layout.insns
    prune = layout.prune
    log = env.log
    pending: list[tuple[VerifierState, int, int, int]] = []
    open_cps: list[Checkpoint] = []
    open_sites: list[Checkpoint] = []   # open checkpoints at callback-calling instructions
    checkpoints = env.checkpoints
    open_keys = env.open_keys
    open_at: dict[int, int] = {}
    open_by_pc: dict[int, list] = {}
    state: VerifierState | None = initial_state(env)
    pc = 0
    prev_insn = 0
    jmps = prev_jmps = 0
    popped = None
    if log.level >= 2:
        from .log import header_lines
        for line in header_lines(layout):
            log.line(line)
    if log.level:
        log.state(0, state, initial=True)
    while True:
        if state is None:
            n = len(pending)
            while open_cps and open_cps[-1].k >= n:
                cp = open_cps.pop()
                cp.open = False
                cpc = cp.key[0]
                if not cp.evicted:
                    _unlist_open(open_keys, open_at, open_by_pc, cp)
                if open_sites and open_sites[-1] is cp:
                    open_sites.pop()
                    env.may_goto_open -= cp.site_may_goto
                    if cp.iter_chain is not None:
                        env.iter_open.remove(cp.iter_chain)
                if cp.scc is not None:
                    del env.scc_entries[cp.scc]
                    log.line(f"SCC exit {_scc_text(cp.scc)}")
                _close(env, cp)
                if not cp.evicted:
                    checkpoints.setdefault(cpc, []).append(cp)
                else:
                    env.cur_states -= 1   # freed from the kernel's free list now
            log.pending = None
            if not pending:
                return
            state, pc, from_pc, mark = pending.pop()
            if log.level == 1:
                del log.parts[mark:]
                log.parts.append(f" {pc}:{log_state_text(state, log)}\n")
            elif log.level:
                # printed after the prune check: a pruned branch is "from A to B: safe"
                popped = from_pc
        env.last_state = state
        env.last_pc = pc
        insn = insns[pc]
        # like the kernel, count the instruction before the prune check
        env.insn_processed += 1
        if env.insn_processed > COMPLEXITY_LIMIT:
            raise Reject(f"BPF program is too large. Processed {env.insn_processed} insn",
                         "too-complex", pc, processed=env.insn_processed)
        if prune[pc]:
            # is_state_visited: prune against explored checkpoints, detect loops against the
            # checkpoints still open on this path, maybe store a new checkpoint
            lst = checkpoints.get(pc)
            if lst:
                for cp in lst:
                    entry = cp.entry
                    # a state inside a callback loop still being explored has incomplete
                    # precision marks: compare every scalar (force_exact)
                    loop = entry is not None and entry.open
                    if _states_equal(env, cp.state, state, pc,
                                     RANGE_WITHIN if loop else NOT_EXACT):
                        cp.hit += 1
                        masks = _live_masks(env, cp.state, pc)
                        if loop:
                            entry.backedges.append((cp.state, state, masks))
                        else:
                            precision.propagate(env, cp.state, state, masks)
                        state = None
                        break
                    cp.miss += 1
                if state is None:
                    popped = _log_safe(log, pc, popped)
                    continue
                if len(lst) > 3:
                    lst[:] = [cp for cp in lst if cp.miss <= cp.hit * 3 + 3]
            # the kernel's states_cnt: every state stored here was compared (counted once
            # no infinite loop was found)
            n_here = len(lst or ()) + open_at.get(pc, 0)
            looping = open_at.get(pc, 0) > 0
            fpr = None
            calls_cb = insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_HELPER \
                and insn.imm in CALLBACK_HELPER_IDS
            may_goto = insn.opcode == MAY_GOTO
            iter_next = insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_KFUNC \
                and kfuncs.is_iter_next(insn)
            if iter_next and looping:
                # an iteration came back to its ``next``: contained in a visit still being
                # explored there while the iterator is active ends it (is_state_visited's
                # is_iter_next_insn case); no infinite-loop check at iterator ``next``
                hit = _in_progress_hit(env, open_sites, state, pc) \
                    if kfuncs.iter_active(state, insn) else None
                if hit is not None:
                    _backedge(env, hit, state, pc)
                    popped = _log_safe(log, pc, popped)
                    state = None
                    continue
            if may_goto and looping:
                # a later visit of a may_goto loop: contained in a visit still being explored
                # at another depth ends it (is_may_goto_insn_at in is_state_visited)
                hit = _in_progress_hit(
                    env, open_sites, state, pc,
                    lambda cp: cp.state.may_goto_depth != state.may_goto_depth)
                if hit is not None:
                    _backedge(env, hit, state, pc)
                    popped = _log_safe(log, pc, popped)
                    state = None
                    continue
            if iter_next:
                looping = False
                add = True   # a forced checkpoint (mark_force_checkpoint)
            elif calls_cb:
                # a callback came back to its call site: stop when the state is contained in
                # one still being explored here (the kernel's RANGE_WITHIN hit on
                # in-progress states at callback-calling instructions)
                if looping:
                    hit = _in_progress_hit(env, open_sites, state, pc)
                    if hit is not None:
                        _backedge(env, hit, state, pc)
                        popped = _log_safe(log, pc, popped)
                        state = None
                        continue
                looping = False
                add = True
            elif looping:
                fpr = (pc, _fingerprint(state))
                if may_goto:
                    add = True
                for cp in open_keys.get(fpr, ()):
                    if cp.state.exact_key() == state.exact_key():
                        if log.level:
                            log.pending = None
                            cur = len(state.frames) - 1
                            log.line(f"infinite loop detected at insn {pc}")
                            log.line("cur state:" + frame_text(state, cur, log.maps))
                            log.line("old state:" + frame_text(cp.state, cur, log.maps))
                        raise Reject(f"infinite loop detected at insn {pc}", "infinite-loop",
                                     pc, logged=True)
                if not may_goto:
                    add = jmps - prev_jmps >= 20 or env.insn_processed - prev_insn >= 100
                    if add:
                        # is_state_visited's miss: an in-progress state that keeps missing
                        # is evicted, after which this is no loop head any more (new
                        # checkpoints every 2 jumps and 8 instructions again)
                        for cp in list(open_by_pc.get(pc, ())):
                            cp.miss += 1
                            if cp.miss > cp.hit * 3 + 3:
                                cp.evicted = True
                                _unlist_open(open_keys, open_at, open_by_pc, cp)
            elif may_goto:
                add = True   # a forced checkpoint, as at callback call sites
            elif not calls_cb:
                add = jmps - prev_jmps >= 2 and env.insn_processed - prev_insn >= 8
            if n_here > env.max_states_per_insn:
                env.max_states_per_insn = n_here
            if jmps - prev_jmps > 40:
                add = True
            if add:
                if fpr is None:
                    fpr = (pc, _fingerprint(state))
                saved = state.copy()
                cp = Checkpoint(saved, fpr, len(pending))
                loop_site = may_goto or iter_next
                in_loop = env.may_goto_open > len(env.iter_open) or (
                    env.iter_open and _scc_chain(env, state, pc) in env.iter_open)
                if open_sites and (calls_cb or loop_site or in_loop or
                                   any(f.in_callback for f in state.frames)):
                    cp.entry = open_sites[0]
                if calls_cb or loop_site:
                    cp.site_may_goto = loop_site
                    env.may_goto_open += loop_site
                    if iter_next:
                        # a next outside any loop heads none (a fresh object matches no state)
                        cp.iter_chain = _scc_chain(env, state, pc) or object()
                        env.iter_open.append(cp.iter_chain)
                    if cp.entry is None:
                        cp.backedges = []
                    open_sites.append(cp)
                # the path continues from the stored state: backtracking walks from here
                state.parent = saved
                state.trace = []
                state.first_idx = pc
                state.bt_memo = None
                if log.level >= 2:
                    scc = _scc_chain(env, state, pc)
                    if scc is not None and scc not in env.scc_entries:
                        env.scc_entries[scc] = cp
                        cp.scc = scc
                        log.line(f"SCC enter {_scc_text(scc)}")
                open_cps.append(cp)
                open_keys.setdefault(fpr, []).append(cp)
                open_at[pc] = open_at.get(pc, 0) + 1
                if not (calls_cb or loop_site):
                    open_by_pc.setdefault(pc, []).append(cp)
                env.total_states += 1
                env.cur_states += 1
                env.peak_states = max(env.peak_states, env.cur_states)
                prev_insn = env.insn_processed
                prev_jmps = jmps
        if log.pending is not None:
            log.flush()
        if popped is not None:
            log.parts.append("\n")
            log.branch(popped, pc, state)
            log.state(pc, state)
            popped = None
        state.trace.append(pc)
        start = len(log.parts) if log.level else None
        env.log_mark = start
        cls = insn.cls
        nxt = pc + insn.slots
        if cls in (isa.ALU, isa.ALU64):
            _alu(env, state, insn, pc)
        elif cls == isa.LDX:
            _ldx(env, state, insn, pc)
        elif cls == isa.STX:
            if insn.opcode & 0xE0 == isa.ATOMIC:
                _atomic(env, state, insn, pc)
            else:
                _store(env, state, insn, pc)
        elif cls == isa.ST:
            _store(env, state, insn, pc)
        elif cls == isa.LD:
            if insn.opcode == isa.LDDW:
                _lddw(env, state, insn, pc)
            else:
                _ld_abs(env, state, insn, pc)
        else:
            op = insn.opcode & 0xF0
            if op == isa.JA:
                jmps += 1
                nxt = insn.jump_target(pc)
            elif insn.opcode == MAY_GOTO:
                jmps += 1
                if insn.src or insn.dst or insn.imm:
                    raise Reject(f"invalid may_goto imm {insn.imm}", "bad-insn", pc)
                # the current path takes the jump; the fall-through (one more iteration)
                # is explored later, one level deeper, with imprecise scalars that changed
                # since the previous visit widened
                queued = state.copy()
                queued.may_goto_depth += 1
                _defer_iteration(state, queued, insn, pc, start, open_sites, pending, log,
                                 same_depth=True)
                pc = insn.jump_target(pc)
                continue
            elif op == isa.CALL:
                if insn.opcode & isa.X:
                    raise Reject("callx is not supported by pybpf's verifier", "unsupported", pc)
                if insn.src == isa.CALL_LOCAL:
                    jmps += 1
                    nxt = _pseudo_call(env, state, insn, pc)
                elif insn.src == isa.CALL_KFUNC:
                    jmps += 1
                    queued = kfuncs.check_kfunc_call(env, state, insn, pc)
                    if queued is not None:
                        # iterator ``next``: this path sees the iterator drained; the next
                        # iteration is explored later, with imprecise scalars that changed
                        # since the previous visit of this ``next`` widened
                        # (process_iter_next_call, find_prev_entry, widen_imprecise_scalars)
                        _defer_iteration(state, queued, insn, pc, start, open_sites,
                                         pending, log, same_depth=False)
                        pc = nxt
                        continue
                else:
                    jmps += 1
                    calls.check_helper_call(env, state, insn, pc)
                    if env.pending_callbacks:
                        # callback visits are explored after this path, as push_stack does
                        for cb_state, cb_pc, from_pc in env.pending_callbacks:
                            pending.append((cb_state, cb_pc, from_pc, len(log.parts)))
                        env.pending_callbacks.clear()
            elif op == isa.EXIT:
                jmps += 1
                in_cb = state.cur.in_callback
                ret = _exit(env, state, pc)
                if log.level >= 2:
                    log.insn(pc, insn, state, start)
                    if ret is not None and not in_cb:
                        log.parts.append(f"\nfrom {pc} to {ret}:"
                                         f"{frame_text(state, len(state.frames) - 1, log.maps)}"
                                         f"\n")
                if ret is None:
                    state = None
                    continue
                if in_cb:
                    # back at the call site: widen imprecise scalars that changed since the
                    # previous visit there (find_prev_entry + widen_imprecise_scalars)
                    sites = [f.callsite for f in state.frames]
                    for cp in reversed(open_sites):
                        if cp.key[0] == ret and \
                                [f.callsite for f in cp.state.frames] == sites:
                            precision.widen_imprecise(cp.state, state)
                            break
                if log.level >= 2:
                    pc = ret
                    continue
                nxt = ret
            else:
                jmps += 1
                succ = _cond_jmp(env, state, insn, pc)
                if log.level >= 2:
                    log.insn(pc, insn, state, start, pc)
                elif log.level:
                    log.parts.append(f"{pc}: {log_insn_text(insn, pc)}")
                mark = len(log.parts)
                if log.level == 1:
                    log.parts.append("\n")
                if not succ:
                    state = None
                    continue
                for other, opc in succ[1:]:
                    pending.append((other, opc, pc, mark))
                    if len(pending) > JMP_SEQ_LIMIT:
                        raise Reject(f"The sequence of {len(pending)} jumps is too complex.",
                                     "too-complex", pc)
                state, pc = succ[0]
                continue
        if log.level:
            log.insn(pc, insn, state, start, nxt, lazy=True)
        pc = nxt


def check_stack_depth(env: Env) -> None:
    """``check_max_stack_depth``: the deepest call chain's frames (each rounded up to 16
    bytes, as with the JIT) fit in 512 bytes."""
    layout = env.layout
    insns = layout.insns
    callees: dict[int, set[int]] = {i: set() for i in range(len(layout.subprog_starts))}
    for pc, insn in enumerate(insns):
        # a callback's address load counts as a call (check_max_stack_depth_subprog)
        if insn is not None and (insn.opcode == isa.JMP | isa.CALL and
                                 insn.src == isa.CALL_LOCAL or
                                 insn.opcode == isa.LDDW and insn.src == isa.PSEUDO_FUNC):
            callees[layout.subprog_of[pc]].add(layout.subprog_of[pc + 1 + insn.imm])
    # the JIT is on (x86-64 default): frames round up to 16 bytes (round_up_stack_depth)
    depth_of = [(d + 15) // 16 * 16 for d in env.subprog_depth]
    tail_calls = {layout.subprog_of[pc] for pc, insn in enumerate(insns)
                  if insn is not None and insn.opcode == isa.JMP | isa.CALL
                  and insn.src == isa.CALL_HELPER and insn.imm == 12}
    # iterative DFS over the call graph
    stack = [(0, depth_of[0], 1, (0,))]
    while stack:
        sub, total, frames, chain = stack.pop()
        if total > mem.STACK_SIZE:
            raise Reject(f"combined stack size of {frames} calls is {total}. Too large",
                         "stack-too-large", None, total=total)
        if sub and sub in tail_calls and total >= 256:
            raise Reject(f"tail_calls are not allowed when call stack of previous frames is "
                         f"{total} bytes. Too large", "tail-call-stack", None, total=total)
        for c in callees[sub]:
            if c in chain:
                continue
            stack.append((c, total + depth_of[c], frames + 1, chain + (c,)))


def _callback_is_static(env: Env, target: int) -> bool:
    """The BTF FUNC of the subprogram at ``target`` has static linkage (the kernel's
    ``func_info_aux[].linkage``); unknown linkage counts as not static (stricter)."""
    cached = getattr(env, "_linkage", None)
    if cached is None:
        cached = env._linkage = {}
        try:
            import struct
            from ..btf.parser import parse_btf
            btf = parse_btf(env.program.btf)
            for slot, tid in env.program.func_info:
                info = struct.unpack_from("<I", env.program.btf, btf.type_offsets[tid] + 4)[0]
                cached[slot] = info & 0xFFFF
        except Exception:
            pass
    return cached.get(target) == 0
