"""Kernel-compatible verifier log text (log levels 1 and 2).

Follows ``kernel/bpf/log.c`` and ``kernel/bpf/disasm.c`` of Linux 6.18: instructions printed as
``3: (7b) *(u64 *)(r10 -8) = r1``, the registers an instruction touched after a ``;`` aligned
at column 38, register states in the kernel's notation (``R1=ctx() R10=fp0``,
``scalar(smin=umin=0,smax=umax=255,var_off=(0x0; 0xff))``, stack slots ``fp-8=mmmm????``), and
the closing ``processed N insns (limit 1000000) ...`` line. At level 1 the kernel keeps only the
trace of the path that failed; the same rewinding is done here when a path ends.
"""

from __future__ import annotations

from .. import isa
from ..helpers.ids import NAMES_BY_ID
from . import bounds as bd
from . import state as st
from . import dynptr
from .state import RegState

_SIZE = {isa.W: "u32", isa.H: "u16", isa.B: "u8", isa.DW: "u64"}
_SSIZE = {isa.W: "s32", isa.H: "s16", isa.B: "s8"}
_ALU = {isa.ADD: "+=", isa.SUB: "-=", isa.MUL: "*=", isa.DIV: "/=", isa.OR: "|=",
        isa.AND: "&=", isa.LSH: "<<=", isa.RSH: ">>=", isa.MOD: "%=", isa.XOR: "^=",
        isa.MOV: "=", isa.ARSH: "s>>="}
_JMP = {isa.JEQ: "==", isa.JGT: ">", isa.JGE: ">=", isa.JSET: "&", isa.JNE: "!=",
        isa.JSGT: "s>", isa.JSGE: "s>=", isa.JLT: "<", isa.JLE: "<=", isa.JSLT: "s<",
        isa.JSLE: "s<="}
_ATOMIC = {isa.ATOMIC_ADD: "+=", isa.ATOMIC_OR: "|=", isa.ATOMIC_AND: "&=",
           isa.ATOMIC_XOR: "^="}


def insn_text(insn: isa.Instruction, pc: int = 0) -> str:
    """One instruction as the kernel's ``print_bpf_insn`` shows it."""
    code, d, s, off, imm = insn.opcode, insn.dst, insn.src, insn.off, insn.imm
    cls, op = insn.cls, code & 0xF0
    head = f"({code:02x}) "
    if cls in (isa.ALU, isa.ALU64):
        c = "w" if cls == isa.ALU else "r"
        if op == isa.END:
            kind = "bswap" if cls == isa.ALU64 else ("be" if code & isa.X else "le")
            return f"{head}r{d} = {kind}{imm} r{d}"
        if op == isa.NEG:
            return f"{head}{c}{d} = -{c}{d}"
        name = _ALU.get(op, "?")
        if off == 1 and op in (isa.DIV, isa.MOD):
            name = "s" + name
        if code & isa.X:
            if op == isa.MOV and off:
                return f"{head}{c}{d} = (s{off}){c}{s}"
            return f"{head}{c}{d} {name} {c}{s}"
        return f"{head}{c}{d} {name} {imm}"
    if cls == isa.STX:
        size = _SIZE[code & 0x18]
        if code & 0xE0 == isa.ATOMIC:
            w = "64" if code & 0x18 == isa.DW else ""
            if imm in _ATOMIC:
                return f"{head}lock *({size} *)(r{d} {off:+d}) {_ATOMIC[imm]} r{s}"
            if imm == isa.ATOMIC_CMPXCHG:
                return f"{head}r0 = atomic{w}_cmpxchg(({size} *)(r{d} {off:+d}), r0, r{s})"
            if imm == isa.ATOMIC_XCHG:
                return f"{head}r{s} = atomic{w}_xchg(({size} *)(r{d} {off:+d}), r{s})"
            name = isa.ATOMIC_OPS.get(imm, "?").replace("fetch_", "")
            return f"{head}r{s} = atomic{w}_fetch_{name}(({size} *)(r{d} {off:+d}), r{s})"
        return f"{head}*({size} *)(r{d} {off:+d}) = r{s}"
    if cls == isa.ST:
        return f"{head}*({_SIZE[code & 0x18]} *)(r{d} {off:+d}) = {imm}"
    if cls == isa.LDX:
        if code & 0xE0 == isa.MEMSX:
            return f"{head}r{d} = *({_SSIZE[code & 0x18]} *)(r{s} {off:+d})"
        return f"{head}r{d} = *({_SIZE[code & 0x18]} *)(r{s} {off:+d})"
    if cls == isa.LD:
        if code == isa.LDDW:
            if s in (isa.PSEUDO_MAP_IDX, isa.PSEUDO_MAP_FD):
                return f"{head}r{d} = map[id:{imm}]"
            if s in (isa.PSEUDO_MAP_IDX_VALUE, isa.PSEUDO_MAP_VALUE):
                return f"{head}r{d} = map[id:{imm}][0]+{insn.imm_hi or 0}"
            return f"{head}r{d} = 0x{insn.imm64:x}"
        size = _SIZE[code & 0x18]
        if code & 0xE0 == isa.IND:
            return f"{head}r0 = *({size} *)skb[r{s} + {imm}]"
        return f"{head}r0 = *({size} *)skb[{imm}]"
    if op == isa.CALL:
        if code & isa.X:
            return f"{head}callx r{d}"
        if s == isa.CALL_LOCAL:
            return f"{head}call pc{imm:+d}"
        if s == isa.CALL_KFUNC:
            # the kernel's print_bpf_insn: the kfunc's name from its BTF id
            from .kfuncs import kfunc_name
            name = kfunc_name(imm) if not insn.off else None
            return f"{head}call {name}#{imm}" if name else f"{head}call kernel-function"
        if not 0 < imm < len(NAMES_BY_ID):
            return f"{head}call unknown#{imm}"
        return f"{head}call bpf_{NAMES_BY_ID[imm]}#{imm}"
    if op == isa.EXIT:
        return f"{head}exit"
    if op == isa.JA:
        return f"{head}gotol pc{imm:+d}" if cls == isa.JMP32 else f"{head}goto pc{off:+d}"
    if code == 0xE5:
        return f"{head}may_goto pc{off:+d}"
    c = "w" if cls == isa.JMP32 else "r"
    if code & isa.X:
        return f"{head}if {c}{d} {_JMP.get(op, '?')} {c}{s} goto pc{off:+d}"
    return f"{head}if {c}{d} {_JMP.get(op, '?')} 0x{imm & 0xFFFFFFFF:x} goto pc{off:+d}"


def _snum(v: int) -> str:
    """Signed numbers in decimal when small (-32768..32767), else 64-bit hex (kernel log.c)."""
    return str(v) if -0x8000 <= v <= 0x7FFF else hex(v & bd.U64)


def _unum(v: int) -> str:
    return str(v) if v <= 0xFFFF else hex(v)


def _scalar_ranges(r: RegState) -> list[str]:
    def s32_val(v):
        return v if -0x8000 <= v <= 0x7FFF else v & bd.U32
    items = [["smin", r.smin, r.smin == bd.S64_MIN], ["smax", r.smax, r.smax == bd.S64_MAX],
             ["umin", r.umin, r.umin == 0], ["umax", r.umax, r.umax == bd.U64],
             ["smin32", s32_val(r.s32min), r.s32min == bd.S32_MIN],
             ["smax32", s32_val(r.s32max), r.s32max == bd.S32_MAX],
             ["umin32", r.u32min, r.u32min == 0], ["umax32", r.u32max, r.u32max == bd.U32]]
    out = []
    for i, (name, val, omit) in enumerate(items):
        if omit:
            continue
        neg1 = name[0] == "s" and val < 0
        names = [name]
        for j in range(i + 2, len(items), 2):
            n2, v2, o2 = items[j]
            if o2 or v2 != val:
                continue
            if (n2[0] == "s" and v2 < 0) != neg1:
                continue
            items[j][2] = True
            names.append(n2)
        out.append("=".join(names) + "=" + (_snum(val) if name[0] == "s" else _unum(val)))
    return out


def reg_text(r: RegState, frameno: int = 0, maps=None) -> str:
    """One register's state (``print_reg_state``)."""
    t = r.type
    if t == st.SCALAR:
        # precise scalars carry the kernel's "P" mark
        p = "P" if r.precise else ""
        if r.var_off.mask == 0:
            return p + _snum(bd.s64(r.var_off.value))
        return p + _scalar_text(r)
    name = t
    if t == st.STACK:
        prefix = f"fp[{r.frameno}]" if r.frameno != frameno else "fp"
        if r.var_off.mask == 0:
            return prefix + _snum(bd.s64(r.var_off.value) + r.off)
        name = prefix
    parts = []
    if r.id:
        parts.append(f"id={r.id}")
    if r.ref_obj_id:
        parts.append(f"ref_obj_id={r.ref_obj_id}")
    if t in (st.MAP_PTR, st.MAP_VALUE, st.MAP_VALUE_OR_NULL, st.MAP_KEY) and maps is not None \
            and r.map is not None and r.map < len(maps):
        spec = maps[r.map]
        parts.append(f"ks={spec.key_size},vs={spec.value_size}")
    if t != st.SCALAR and r.off:
        parts.append(f"off={_snum(r.off)}")
    if t in st.PACKET_TYPES or t == st.PACKET_END:
        if t != st.PACKET_END:
            parts.append(f"r={_unum(r.range & bd.U64)}")
    if t in (st.MEM, st.MEM_OR_NULL, st.RINGBUF_MEM, st.RINGBUF_MEM_OR_NULL, st.RDONLY_MEM,
             st.RDONLY_MEM_OR_NULL):
        parts.append(f"sz={_unum(r.mem_size)}")
    if r.var_off.mask == 0:
        if r.var_off.value and t != st.SCALAR:
            parts.append(f"imm={_snum(bd.s64(r.var_off.value))}")
    else:
        parts.extend(_scalar_ranges(r))
        if r.var_off.mask != bd.U64:
            parts.append(f"var_off={r.var_off}")
    return f"{name}({','.join(parts)})"


def _id_text(r: RegState) -> str:
    """``id=1``, or ``id=1+4`` / ``id=1-4`` for a scalar linked with a constant delta."""
    if r.id & st.ADD_CONST:
        return f"id={r.id & ~st.ADD_CONST}{r.off:+d}"
    return f"id={r.id}"


def _scalar_text(r: RegState) -> str:
    parts = []
    if r.id:
        parts.append(_id_text(r))
    parts.extend(_scalar_ranges(r))
    if r.var_off.mask != bd.U64:
        parts.append(f"var_off={r.var_off}")
    return f"scalar({','.join(parts)})"


def _spill_text(slot, frameno: int, maps) -> str:
    """A spilled register; a narrow spill shows the other bytes' kinds first
    (``fp-8=???????120``)."""
    rest = slot.types.split(st.SPILL, 1)[0]
    return rest + reg_text(slot.spilled, frameno, maps)


def slot_text(slot) -> str | None:
    if slot.types[7] == st.SPILL and slot.spilled is not None:
        return None
    if all(t == st.INVALID for t in slot.types):
        return ""
    return slot.types


def state_text(state, *, regs: set | None = None, slots: set | None = None, maps=None) -> str:
    """``print_verifier_state``: every live register and stack slot, or only those listed."""
    out = []
    for f in state.frames:
        if regs is not None and f is not state.frames[-1]:
            continue   # the registers an instruction touched: its own frame only
        if f.frameno:
            out.append(f" frame{f.frameno}:")
        show_all = regs is None
        for i, r in enumerate(f.regs):
            if r.type == st.NOT_INIT:
                continue
            if not show_all and i not in regs:
                continue
            out.append(f" R{i}={reg_text(r, f.frameno, maps)}")
        for spi in sorted(f.stack):
            if slots is not None and spi not in slots:
                continue
            text = _slot_text(f.stack[spi], f.frameno, maps)
            if text:
                out.append(f" fp{-(spi + 1) * 8}={text}")
    if state.refs:
        out.append(" refs=" + ",".join(str(k) for k in state.refs))
    return "".join(out)


def _slot_text(slot, frameno: int, maps) -> str | None:
    """One stack slot as the kernel prints it after ``fp-N=``: a spilled register, a dynptr
    (its first slot only), an iterator, or the byte kinds; None for an invalid slot."""
    if slot.types[7] == st.SPILL and slot.spilled is not None:
        return _spill_text(slot, frameno, maps)
    if slot.types[0] == st.DYNPTR and slot.spilled is not None:
        return dynptr.slot_text(slot) if slot.spilled.range == 1 else None
    if slot.types[0] == st.ITER and slot.spilled is not None:
        it = slot.spilled
        return (f"iter_num(ref_id={it.ref_obj_id},state={it.iter_state},"
                f"depth={it.iter_depth})")
    if any(t != st.INVALID for t in slot.types):
        return slot.types
    return None


def frame_text(state, fr: int, maps=None) -> str:
    """``print_verifier_state`` of one frame: " frameN:" (not for frame 0), every
    initialised register and stack slot."""
    f = state.frames[fr]
    out = [f" frame{f.frameno}:"] if f.frameno else []
    for i, r in enumerate(f.regs):
        if r.type != st.NOT_INIT:
            out.append(f" R{i}={reg_text(r, f.frameno, maps)}")
    for spi in sorted(f.stack):
        text = _slot_text(f.stack[spi], f.frameno, maps)
        if text:
            out.append(f" fp{-(spi + 1) * 8}={text}")
    return "".join(out)


def _touched(insn) -> tuple[set, bool]:
    """Registers an instruction reads or writes (the kernel's "scratched" marks)."""
    cls, op, d, s = insn.cls, insn.opcode & 0xF0, insn.dst, insn.src
    if cls in (isa.ALU, isa.ALU64):
        return ({d, s} if insn.opcode & isa.X and op != isa.END else {d}), False
    if cls == isa.LDX:
        return {d, s}, "load"
    if cls == isa.ST:
        return {d}, True
    if cls == isa.STX:
        regs = {d, s}
        if insn.opcode & 0xE0 == isa.ATOMIC and insn.imm == isa.ATOMIC_CMPXCHG:
            regs.add(0)
        return regs, True
    if cls == isa.LD:
        if insn.opcode == isa.LDDW:
            return {d}, False
        return ({0, 6, s} if insn.opcode & 0xE0 == isa.IND else {0, 6}), False
    if op == isa.CALL:
        return {0}, False
    if op in (isa.EXIT, isa.JA):
        return set(), False
    return ({d, s} if insn.opcode & isa.X else {d}), False


class VerifierLog:
    """Collects log text; ``level`` 0 keeps nothing but the closing statistics."""

    def __init__(self, level: int = 0, maps=None):
        self.level = level
        self.parts: list[str] = []
        self.maps = maps
        self.marks: list[int] = []
        self.pending: tuple | None = None   # (line index, label, state) not yet written
        self.scratched: set = set()   # stack slots a helper call touched

    def line(self, text: str) -> None:
        if self.level:
            self.parts.append(text + "\n")

    def state(self, pc: int, state, initial: bool = False) -> None:
        if self.level:
            self.parts.append(f"{pc}:{state_text(state, maps=self.maps)}\n")

    def _tail(self, insn, state) -> str:
        """The registers (and stack slot) an instruction touched, after it ran."""
        if insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_LOCAL:
            return frame_text(state, len(state.frames) - 1, self.maps)
        regs, stack = _touched(insn)
        regs.discard(None)
        if insn.is_jump and insn.opcode & 0xF0 != isa.JA and self.level < 2:
            return ""
        slots = set()
        if self.scratched:
            if insn.opcode == isa.JMP | isa.CALL:
                slots = {spi for spi in self.scratched if spi in state.cur.stack}
            self.scratched = set()
        if not regs and not stack:
            return ""
        if stack:
            r = state.cur.regs[insn.src if stack == "load" else insn.dst]
            if r.type == st.STACK and r.var_off.mask == 0:
                k = -(r.off + insn.off + bd.s64(r.var_off.value)) - 1
                slots = {k // 8}
            elif r.type == st.STACK and r.frameno == len(state.frames) - 1:
                # a variable offset scratches every slot it may touch
                size = isa.SIZE_BYTES[insn.opcode & 0x18]
                lo = r.off + insn.off + r.smin
                hi = r.off + insn.off + r.smax + size - 1
                if -512 <= lo <= hi < 0:
                    slots = {spi for spi in range((-hi - 1) // 8, (-lo - 1) // 8 + 1)
                             if spi in state.cur.stack}
        live = {i for i in regs if state.cur.regs[i].type != st.NOT_INIT}
        text = state_text(state, regs=live, slots=slots, maps=self.maps)
        # scratched slots with nothing left to print (a released dynptr) still end the line
        # with the kernel's ";"
        return text or (_EMPTY if slots else "")

    def insn(self, pc: int, insn, state, start: int | None = None,
             label: int | None = None, lazy: bool = False) -> None:
        """The instruction and, at level 2, the registers it touched.

        As the kernel's ``print_insn_state``: when other lines were logged while it ran
        (from position ``start``: backtracking, call frames), the instruction goes before
        them and the state after them on a line of its own labelled ``label``; with
        ``lazy`` the state is only written by :meth:`flush` when the next instruction is
        not pruned (so a pruned successor drops it, as in the kernel)."""
        if not self.level:
            return
        text = f"{pc}: {insn_text(insn, pc)}"
        is_exit = insn.cls == isa.JMP and insn.opcode & 0xF0 == isa.EXIT
        grew = start is not None and len(self.parts) > start
        if self.level < 2 and not grew:
            tail = self._tail(insn, state)
            if tail:
                text = _inline(text, tail)
            self.parts.append(text + "\n")
            return
        if grew:
            self.parts.insert(start, text + "\n")
        else:
            self.parts.append(text + "\n")
        tail = "" if is_exit else self._tail(insn, state)
        idx = None if grew else len(self.parts) - 1
        self.pending = (idx, label if label is not None else pc, tail)
        if not lazy or self.level < 2:
            self.flush()

    def flush(self) -> None:
        """Write the state after the last instruction: on its line when nothing came in
        between, else on a line of its own."""
        if self.pending is None:
            return
        idx, label, tail = self.pending
        self.pending = None
        if not tail:
            return
        if idx is not None and idx == len(self.parts) - 1:
            self.parts[idx] = _inline(self.parts[idx][:-1], tail) + "\n"
        else:
            self.parts.append(f"{label}:{tail}\n")

    def branch(self, from_pc: int, to_pc: int, state) -> None:
        if not self.level:
            return
        self.parts.append(f"from {from_pc} to {to_pc}:{state_text(state, maps=self.maps)}\n")

    def text(self) -> str:
        return "".join(self.parts)


def header_lines(layout) -> list[str]:
    """The start of a level-2 log: ``func#N @M`` per subprogram and the live registers
    before every instruction with its loop number (``compute_live_registers``)."""
    from .cfg import loop_ids
    out = [f"func#{i} @{start}" for i, start in enumerate(layout.subprog_starts)]
    out.append("Live regs before insn:")
    loops = loop_ids(layout)
    for pc, insn in enumerate(layout.insns):
        if insn is None:
            continue
        live = "".join(str(i) if layout.live_in[pc] >> i & 1 else "." for i in range(10))
        scc = f"{loops[pc]:>3}" if loops[pc] else "   "
        out.append(f"{scc} {pc:>3}: {live} {insn_text(insn, pc)}")
    return out


def _inline(text: str, tail: str) -> str:
    """``text`` padded to the kernel's column for the state after ``;``."""
    pad = max(40, len(text) + 1 + 4)
    pad = (pad + 7) // 8 * 8 - (len(text) + 1) - 1
    return text + " " * pad + ";" + tail.replace(_EMPTY, "")


#: a state after an instruction that prints as a bare ";"
_EMPTY = "\0"


def summary_line(env) -> str:
    return (f"processed {env.insn_processed} insns (limit 1000000) max_states_per_insn "
            f"{env.max_states_per_insn} total_states {env.total_states} peak_states "
            f"{env.peak_states} mark_read 0")
