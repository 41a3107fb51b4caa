"""eBPF to LLVM IR: one emitter per opcode family, chosen from a table built from pybpf.isa.

The IR is written as text (much faster to produce than through ``llvmlite.ir`` objects, which
matters for the 50 ms compile budget) and follows the interpreter's semantics exactly:

* registers are ``alloca`` slots that LLVM's ``mem2reg`` turns into SSA values; 32-bit
  operations truncate and zero-extend; shift counts are masked; division and modulo by zero
  (and ``INT_MIN / -1``) are guarded in IR with selects, so native code never traps
  (RFC 9669 §4.1, Linux's rewrite of BPF_DIV/BPF_MOD);
* every subprogram is an LLVM function ``i64 (ptr ctx, i64 r1..r5, i64 depth)``: its own
  512-byte frame, r0 and r6-r9 zero on entry and the caller's r1-r9 untouched by the call --
  what the interpreter does;
* in *checked* mode each access whose address is not a constant offset from r10 is compared
  with a two-word region cache (one for loads, one for stores); a miss calls the cold
  ``pybpf.slow`` routine that scans the region table and either refills the cache or records
  a fault. Blocks charge the instruction budget on entry; it is tested at loop heads, calls
  and exits.

Calls into Python go through one trampoline ``u64 helper(ctx, mode, id, pc, r1..r5)``
(:mod:`.runtime`); a few helpers have native paths (:data:`NATIVE_HELPERS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .. import isa
from ..helpers import HELPER_IDS
from ..helpers.kfuncs import KFUNC_KEY
from ..helpers.maps import MAX_TAIL_CALL_CNT
from . import analysis as an
from . import hashindex
from .ring import RING_DECLARATIONS, RING_IR, RING_NATIVES
from .tailcall import FULL as TAIL_FULL, HANDED, TAIL_DECLARATION, TAIL_IR, table_offsets
from .layout import CTX_FIELDS, FRAMES, MODE_CALLX, MODE_HELPER, REGION_WORDS, Fault

C = CTX_FIELDS
#: part of every compilation cache key: bump when the generated code or the context layout
#: changes, so objects cached on disk by an older pybpf are not reused
CODEGEN_VERSION = (3, tuple(CTX_FIELDS))
STACK = isa.STACK_SIZE
WIDTH = {isa.W: 32, isa.H: 16, isa.B: 8, isa.DW: 64}


@dataclass(frozen=True)
class MapShape:
    """What codegen may assume about map ``index`` (part of the compilation cache key)."""

    type: str
    key_size: int
    value_size: int
    max_entries: int
    stride: int


@dataclass
class Options:
    checked: bool = True
    native_helpers: bool = True
    overridden: frozenset[int] = frozenset()     # helper ids replaced by the caller


@dataclass
class ModuleIR:
    """The generated module and the run-time constants its code expects in ``ctx.consts``."""

    text: str
    consts: list[tuple[str, int]]           # ("lddw", slot) or ("map_base", map index)
    entries: list[int]


class Emitter:
    """Textual IR with fresh value names."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.n = 0

    def fresh(self, stem: str = "t") -> str:
        self.n += 1
        return f"%{stem}{self.n}"

    def __call__(self, text: str) -> str:
        name = self.fresh()
        self.lines.append(f"  {name} = {text}")
        return name

    def do(self, text: str) -> None:
        self.lines.append(f"  {text}")

    def label(self, name: str) -> None:
        self.lines.append(f"{name}:")


def _ity(bits: int) -> str:
    return f"i{bits}"


class FunctionGen:
    """Emits one LLVM function for one entry point."""

    def __init__(self, mod: "ModuleGen", plan: an.FunctionPlan):
        self.mod = mod
        self.plan = plan
        self.code = mod.code
        self.checked = mod.options.checked
        self.e = Emitter()
        self.frame = "%frame"       # ptr to the lowest byte of the frame
        self.temps: list[tuple[str, str]] = []  # extra slots (allocated in the entry block)
        self.known: dict[int, str] = {}     # register -> SSA value valid in the current block
        self.dirty: set[int] = set()        # registers of ``known`` not yet stored to slots
        self.alloca_at = 0
        self.frame_lo = "%frame.lo"
        # LD_ABS / LD_IND in the function: it keeps the data window in %pkt.lo / %pkt.len
        self.packet_used = any(self.code[p].cls == isa.LD and self.code[p].opcode != isa.LDDW
                               for p in plan.pcs)
        self.packet_miss = False    # the shared %pktmiss block is needed
        self.abs_checks: dict[int, int | None] = {}     # see group_abs_checks

    # --- small pieces --------------------------------------------------------------------------
    def temp(self, ty: str = "i64") -> str:
        """A fresh stack slot in the entry block (LLVM promotes scalars to SSA values; a slot
        made inside a loop would grow the native stack every iteration)."""
        name = self.e.fresh("tmp")
        self.temps.append((name, ty))
        return name

    def ctx(self, field_index: int) -> str:
        return self.e(f"getelementptr i64, ptr %ctx, i64 {field_index}")

    def ctx_load(self, name: str) -> str:
        return self.e(f"load i64, ptr {self.ctx(C[name])}, align 8")

    def packet(self, which: str) -> str:
        """The input data's address (``lo``) or length (``len``) for LD_ABS / LD_IND: read
        from the context once per function and again after each call (a helper may move
        the data), through a slot LLVM promotes -- not once per load."""
        return self.e(f"load i64, ptr %pkt.{which}, align 8")

    def reload_packet(self) -> None:
        if not self.packet_used:
            return
        self.e.do(f"store i64 {self.ctx_load('data_lo')}, ptr %pkt.lo, align 8")
        self.e.do(f"store i64 {self.ctx_load('data_len')}, ptr %pkt.len, align 8")

    def ctx_store(self, name: str, value: str) -> None:
        self.e.do(f"store i64 {value}, ptr {self.ctx(C[name])}, align 8")

    def reg(self, r: int) -> str:
        """Register ``r``'s value: loaded once per block, then reused (less IR to parse and
        promote; every label a jump can reach starts a new block and forgets the values)."""
        value = self.known.get(r)
        if value is None:
            value = self.known[r] = self.e(f"load i64, ptr %r{r}, align 8")
        return value

    def set_reg(self, r: int, value: str) -> None:
        """Give ``r`` a new value. The slot is written once, when the block ends
        (:meth:`flush`): nothing inside a block reads the slots behind ``known``, and the
        paths that leave it early (faults, unwinding, exits) never read registers -- so a
        register written several times in a block costs one store."""
        self.known[r] = value
        self.dirty.add(r)

    def flush(self) -> None:
        """Store the registers the block changed (before it branches to another block)."""
        for r in sorted(self.dirty):
            self.e.do(f"store i64 {self.known[r]}, ptr %r{r}, align 8")
        self.dirty.clear()

    def trunc32(self, v: str) -> str:
        return self.e(f"trunc i64 {v} to i32")

    def zext(self, v: str, bits: int) -> str:
        return v if bits == 64 else self.e(f"zext {_ity(bits)} {v} to i64")

    def fault(self, kind: Fault, pc: int, addr: str = "0", size: int = 0) -> None:
        """Record a fault and leave the function (the block ends here)."""
        self.e.do(f"call void @pybpf.fault(ptr %ctx, i64 {int(kind)}, i64 {pc}, i64 {addr}, "
                  f"i64 {size})")
        self.e.do("br label %unwind")

    def check_status(self) -> None:
        st = self.ctx_load("status")
        bad = self.e(f"icmp ne i64 {st}, 0")
        ok = self.e.fresh("ok")[1:]
        self.e.do(f"br i1 {bad}, label %unwind, label %{ok}, !prof !0")
        self.e.label(ok)

    def save_budget(self) -> None:
        if self.checked:
            self.ctx_store("budget", self.e("load i64, ptr %budget, align 8"))

    def load_budget(self) -> None:
        if self.checked:
            self.e.do(f"store i64 {self.ctx_load('budget')}, ptr %budget, align 8")

    def reset_caches(self) -> None:
        if self.checked:
            for c in ("rc", "wc"):
                self.e.do(f"store i64 ptrtoint (ptr @pybpf.guard to i64), ptr %{c}.lo, align 8")
                self.e.do(f"store i64 8, ptr %{c}.span, align 8")

    # --- memory access -------------------------------------------------------------------------
    def pointer(self, pc: int, base: int, off: int, size: int, write: bool) -> str:
        """A ``ptr`` for an access of ``size`` bytes at ``base + off``, checked if needed."""
        st = self.plan.states[pc][base]
        if st is not None and st[0] == an.FP:
            total = st[1] + off
            if -STACK <= total and total + size <= 0:
                return self.e(f"getelementptr inbounds i8, ptr {self.frame}, i64 {STACK + total}")
            if not self.plan.escapes:
                # outside a frame no other code can address: a certain fault, reported at the
                # address the interpreter's frame of this depth would give
                slot = self.e(f"getelementptr i64, ptr %ctx, i64 {FRAMES}")
                slot = self.e(f"getelementptr i64, ptr {slot}, i64 %depth")
                lo = self.e(f"load i64, ptr {slot}, align 8")
                addr = self.e(f"add i64 {lo}, {STACK + total}")
                self.fault(Fault.WRITE if write else Fault.READ, pc, addr, size)
                self.e.label(self.e.fresh("dead")[1:])
                return "poison"
        addr = self.e(f"add i64 {self.reg(base)}, {off}")
        if self.checked:
            self.check(pc, addr, size, write)
        return self.e(f"inttoptr i64 {addr} to ptr")

    def check(self, pc: int, addr: str, size: int, write: bool) -> None:
        e = self.e
        c = "wc" if write else "rc"
        lo = e(f"load i64, ptr %{c}.lo, align 8")
        span = e(f"load i64, ptr %{c}.span, align 8")
        d = e(f"sub i64 {addr}, {lo}")
        lim = e(f"sub i64 {span}, {size}")
        ok = e(f"icmp ule i64 {d}, {lim}")
        hit, slow, upd = (e.fresh(x)[1:] for x in ("hit", "slow", "upd"))
        e.do(f"br i1 {ok}, label %{hit}, label %{slow}, !prof !1")
        e.label(slow)
        res = e(f"call {{i64, i64}} @pybpf.slow(ptr %ctx, i64 {addr}, i64 {size}, "
                f"i64 {int(write)}, i64 {pc})")
        nlo = e(f"extractvalue {{i64, i64}} {res}, 0")
        nspan = e(f"extractvalue {{i64, i64}} {res}, 1")
        bad = e(f"icmp eq i64 {nspan}, 0")
        e.do(f"br i1 {bad}, label %unwind, label %{upd}, !prof !0")
        e.label(upd)
        e.do(f"store i64 {nlo}, ptr %{c}.lo, align 8")
        e.do(f"store i64 {nspan}, ptr %{c}.span, align 8")
        e.do(f"br label %{hit}")
        e.label(hit)

    # --- the function --------------------------------------------------------------------------
    def emit(self) -> list[str]:
        e = self.e
        plan = self.plan
        e.label("entry")
        for r in range(11):
            e.do(f"%r{r} = alloca i64, align 8")
        if self.checked:
            e.do("%budget = alloca i64, align 8")
            for c in ("rc", "wc"):
                e.do(f"%{c}.lo = alloca i64, align 8")
                e.do(f"%{c}.span = alloca i64, align 8")
        if plan.escapes:
            slot = e(f"getelementptr i64, ptr %ctx, i64 {FRAMES}")
            slot = e(f"getelementptr i64, ptr {slot}, i64 %depth")
            e.do(f"{self.frame_lo} = load i64, ptr {slot}, align 8, !invariant.load !2")
            e.do(f"{self.frame} = inttoptr i64 {self.frame_lo} to ptr")
            fp = e(f"add i64 {self.frame_lo}, {STACK}")
            self.set_reg(10, fp)
            if self.checked:    # unverified code may read before writing: zero, as the VM does
                e.do(f"call void @llvm.memset.p0.i64(ptr align 8 {self.frame}, i8 0, "
                     f"i64 {STACK}, i1 false)")
        else:
            e.do(f"{self.frame} = alloca [{STACK} x i8], align 8")
            e.do(f"call void @llvm.memset.p0.i64(ptr align 8 {self.frame}, i8 0, i64 {STACK}, "
                 "i1 false)")
        for r in range(6):
            self.set_reg(r, "0" if r == 0 else f"%a{r}")
        for r in range(6, 10):
            self.set_reg(r, "0")
        self.load_budget()
        self.reset_caches()
        self.alloca_at = len(e.lines)
        self.proven = self.proven_lengths() if self.packet_used else {}
        self.flush()
        e.do(f"br label %pc{plan.entry}")
        for leader in sorted(plan.leaders):
            self.emit_block(leader)
        for target in sorted(plan.bad_targets):
            e.label(f"pc{target}")
            self.known = {}
            self.dirty = set()
            if 0 <= target < len(self.code):
                self.fault(Fault.MIDDLE, target)
            else:
                self.fault(Fault.LEFT, target)
        if self.packet_miss:    # LD_ABS / LD_IND outside the data: the program returns 0
            e.label("pktmiss")
            self.ctx_store("exit_value", "0")
            self.ctx_store("status", str(int(Fault.EXIT)))
            e.do("br label %unwind")
        e.label("unwind")
        self.save_budget()
        e.do("ret i64 0")
        entry = [f"  {t} = alloca {ty}, align 8" for t, ty in self.temps]
        if self.packet_used:
            entry += ["  %pkt.lo = alloca i64, align 8", "  %pkt.len = alloca i64, align 8"]
            saved, e.lines = e.lines, []
            self.reload_packet()
            entry += e.lines
            e.lines = saved
        e.lines[self.alloca_at:self.alloca_at] = entry
        args = ", ".join(f"i64 %a{i}" for i in range(1, 6))
        # the entry is exported: the shared driver (RUNTIME_IR) calls it through a pointer
        linkage = "" if plan.entry == 0 else "internal "
        head = (f"define {linkage}i64 @{self.mod.prefix}f{plan.entry}(ptr noalias nocapture "
                f"%ctx, {args}, i64 %depth) nounwind {{")
        return [head] + e.lines + ["}", ""]

    def emit_block(self, leader: int) -> None:
        e = self.e
        block = self.plan.block_of(leader)
        e.label(f"pc{leader}")
        self.known = {}
        self.dirty = set()
        if self.checked:
            b = e("load i64, ptr %budget, align 8")
            nb = e(f"sub i64 {b}, {len(block)}")
            e.do(f"store i64 {nb}, ptr %budget, align 8")
            if leader in self.plan.checkpoints:
                self.budget_check(leader)
        if self.packet_used:
            self.abs_checks = self.group_abs_checks(block, self.proven.get(leader, 0))
        for pc in block:
            insn = self.code[pc]
            terminated = EMITTERS[_family(insn)](self, insn, pc)
            if terminated:
                return
        last = block[-1]
        nxt = last + self.code[last].slots
        self.flush()
        e.do(f"br label %pc{nxt}")

    def abs_end(self, insn: isa.Instruction) -> int | None:
        """Bytes of data an LD_ABS needs (-1: a negative offset, a certain miss); None for
        anything else."""
        if insn.cls != isa.LD or insn.opcode == isa.LDDW or insn.opcode & 0xE0 == isa.IND:
            return None
        return insn.imm + isa.SIZE_BYTES[insn.opcode & 0x18] if insn.imm >= 0 else -1

    def proven_lengths(self) -> dict[int, int]:
        """Per block: how many bytes of data every path into it has already proven present
        (LD_ABS loads that passed their check; a call forgets, as a helper may move the
        data). A must-analysis over the blocks: the least over predecessors, iterated to a
        fixed point (loops only lower it)."""
        plan, code = self.plan, self.code
        blocks = {leader: plan.block_of(leader) for leader in plan.leaders}
        gains: dict[int, int] = {}
        for leader, block in blocks.items():
            if any(an.is_call(code[p]) for p in block):
                gains[leader] = -2      # the window may change: nothing is known after it
            else:
                gains[leader] = max([e for p in block if (e := self.abs_end(code[p])) is not
                                     None and e >= 0], default=0)
        succ = {leader: [t for t in an.successors(code, block[-1]) if t in blocks]
                for leader, block in blocks.items()}
        proven_in: dict[int, int] = {plan.entry: 0}
        order = sorted(blocks)
        changed = True
        while changed:
            changed = False
            for leader in order:
                inn = proven_in.get(leader)
                if inn is None:
                    continue
                gain = gains[leader]
                out = 0 if gain == -2 else max(inn, gain)
                for t in succ[leader]:
                    old = proven_in.get(t)
                    new = out if old is None else min(old, out)
                    if t == plan.entry:
                        new = 0
                    if new != old:
                        proven_in[t] = new
                        changed = True
        return proven_in

    def group_abs_checks(self, block: list[int], proven: int) -> dict[int, int | None]:
        """Bounds checks of a block's LD_ABS loads: pc -> the end to test, or None when no
        test is needed.

        A load within what earlier checks proved (``proven``, from :meth:`proven_lengths`,
        growing along the block) needs none. Otherwise the first load of a run tests the
        largest end any load of the run needs (-1: a negative offset, a certain miss): a run
        only spans ALU instructions and packet loads, a miss anywhere in it ends the program
        with r0 = 0, and nothing in between can be seen afterwards (no store, call or memory
        access that could fault first), so failing at the first load is the same result.
        Parsers thus test the packet length once instead of per field."""
        checks: dict[int, int | None] = {}
        first = None
        for pc in block:
            insn = self.code[pc]
            end = self.abs_end(insn)
            if end is not None:
                if 0 <= end <= proven:
                    checks[pc] = None
                elif first is None:
                    first = pc
                    checks[pc] = end
                else:
                    checks[pc] = None
                    old = checks[first]
                    checks[first] = -1 if old == -1 or end == -1 else max(old, end)
                if first is not None and checks[first] != -1:
                    proven = max(proven, checks[first])
            elif insn.cls == isa.LD and insn.opcode != isa.LDDW:
                continue            # LD_IND: tested on its own (the offset is a register)
            elif insn.cls not in (isa.ALU, isa.ALU64):
                first = None
        return checks

    def budget_check(self, pc: int) -> None:
        """Fail if the budget is spent. Blocks only subtract; the test runs at loop heads,
        function entries, calls and exits -- wherever the interpreter could otherwise be
        out-run by more than a forward path of the program."""
        if not self.checked:
            return
        e = self.e
        b = e("load i64, ptr %budget, align 8")
        ok = e(f"icmp sge i64 {b}, 0")
        body, over = e.fresh("body")[1:], e.fresh("over")[1:]
        e.do(f"br i1 {ok}, label %{body}, label %{over}, !prof !1")
        e.label(over)
        self.fault(Fault.BUDGET, pc)
        e.label(body)


# --- opcode families -----------------------------------------------------------------------------

def _operand(g: FunctionGen, insn: isa.Instruction, bits: int) -> str:
    if insn.opcode & isa.X:
        v = g.reg(insn.src)
        return v if bits == 64 else g.trunc32(v)
    return str(insn.imm)    # LLVM sign-extends/truncates the literal to the operand width


def _binop(g: FunctionGen, kind: int, signed: bool, a: str, b: str, bits: int) -> str:
    e = g.e
    t = _ity(bits)
    if kind in SIMPLE_BINOPS:
        return e(f"{SIMPLE_BINOPS[kind]} {t} {a}, {b}")
    if kind in SHIFTS:
        n = e(f"and {t} {b}, {bits - 1}")
        return e(f"{SHIFTS[kind]} {t} {a}, {n}")
    # division and modulo: no native trap, Linux results (RFC 9669 §4.1)
    zero = e(f"icmp eq {t} {b}, 0")
    safe = e(f"select i1 {zero}, {t} 1, {t} {b}")
    if signed:
        amin = e(f"icmp eq {t} {a}, {-(1 << (bits - 1))}")
        bneg = e(f"icmp eq {t} {safe}, -1")
        ovf = e(f"and i1 {amin}, {bneg}")
        safe = e(f"select i1 {ovf}, {t} 1, {t} {safe}")
    if kind == isa.DIV:
        q = e(f"{'sdiv' if signed else 'udiv'} {t} {a}, {safe}")
        return e(f"select i1 {zero}, {t} 0, {t} {q}")
    r = e(f"{'srem' if signed else 'urem'} {t} {a}, {safe}")
    return e(f"select i1 {zero}, {t} {a}, {t} {r}")


SIMPLE_BINOPS = {isa.ADD: "add", isa.SUB: "sub", isa.MUL: "mul", isa.OR: "or",
                 isa.AND: "and", isa.XOR: "xor"}
SHIFTS = {isa.LSH: "shl", isa.RSH: "lshr", isa.ARSH: "ashr"}


def emit_alu(g: FunctionGen, insn: isa.Instruction, pc: int) -> bool:
    e = g.e
    bits = 64 if insn.cls == isa.ALU64 else 32
    t = _ity(bits)
    kind = insn.opcode & 0xF0
    if kind == isa.MOV:
        if insn.opcode & isa.X and insn.off:
            v = g.e(f"trunc i64 {g.reg(insn.src)} to i{insn.off}")
            v = e(f"sext i{insn.off} {v} to {t}")
        elif insn.opcode & isa.X:
            v = g.reg(insn.src)
            v = v if bits == 64 else g.trunc32(v)
        else:
            v = str(insn.imm if bits == 64 else insn.imm & isa.U32)
            g.set_reg(insn.dst, v)
            return False
        g.set_reg(insn.dst, g.zext(v, bits))
        return False
    a = g.reg(insn.dst)
    if kind == isa.END:     # byte order works on the whole register whatever the class
        width = insn.imm
        v = a if width == 64 else e(f"trunc i64 {a} to i{width}")
        if insn.opcode != (isa.ALU | isa.K | isa.END) and width > 8:
            v = e(f"call i{width} @llvm.bswap.i{width}(i{width} {v})")
        g.set_reg(insn.dst, g.zext(v, width))
        return False
    if bits == 32:
        a = g.trunc32(a)
    if kind == isa.NEG:
        v = e(f"sub {t} 0, {a}")
    else:
        v = _binop(g, kind, insn.off == 1, a, _operand(g, insn, bits), bits)
    g.set_reg(insn.dst, g.zext(v, bits))
    return False


CONDITIONS = {isa.JEQ: "eq", isa.JNE: "ne", isa.JGT: "ugt", isa.JGE: "uge", isa.JLT: "ult",
              isa.JLE: "ule", isa.JSGT: "sgt", isa.JSGE: "sge", isa.JSLT: "slt",
              isa.JSLE: "sle"}


def emit_jump(g: FunctionGen, insn: isa.Instruction, pc: int) -> bool:
    e = g.e
    kind = insn.opcode & 0xF0
    target = insn.jump_target(pc)
    if kind == isa.JA:
        g.flush()
        e.do(f"br label %pc{target}")
        return True
    bits = 64 if insn.cls == isa.JMP else 32
    t = _ity(bits)
    a = g.reg(insn.dst)
    if bits == 32:
        a = g.trunc32(a)
    b = _operand(g, insn, bits)
    if kind == isa.JSET:
        m = e(f"and {t} {a}, {b}")
        cond = e(f"icmp ne {t} {m}, 0")
    else:
        cond = e(f"icmp {CONDITIONS[kind]} {t} {a}, {b}")
    g.flush()
    e.do(f"br i1 {cond}, label %pc{target}, label %pc{pc + 1}")
    return True


def emit_exit(g: FunctionGen, insn: isa.Instruction, pc: int) -> bool:
    g.budget_check(pc)
    r0 = g.reg(0)
    g.save_budget()
    g.e.do(f"ret i64 {r0}")
    return True


def _args(g: FunctionGen) -> str:
    return ", ".join(f"i64 {g.reg(r)}" for r in range(1, 6))


def _local_call(g: FunctionGen, entry: int, pc: int, args: str) -> str:
    e = g.e
    depth = e("add i64 %depth, 1")
    deep = e(f"icmp uge i64 {depth}, {isa.MAX_CALL_DEPTH}")
    ok, over = e.fresh("call")[1:], e.fresh("deep")[1:]
    e.do(f"br i1 {deep}, label %{over}, label %{ok}, !prof !0")
    e.label(over)
    g.fault(Fault.DEPTH, pc)
    e.label(ok)
    return e(f"call i64 @{g.mod.prefix}f{entry}(ptr %ctx, {args}, i64 {depth})")


def _after_call(g: FunctionGen, r0: str) -> None:
    g.check_status()
    g.reload_packet()
    g.load_budget()
    g.reset_caches()
    g.set_reg(0, r0)


def _trampoline(g: FunctionGen, mode: int, hid: str, pc: int, args: str) -> str:
    g.ctx_store("depth", "%depth")     # callbacks run by the helper nest one level deeper
    fn = g.e(f"load ptr, ptr {g.ctx(C['helper'])}, align 8")
    return g.e(f"call i64 {fn}(ptr %ctx, i64 {mode}, i64 {hid}, i64 {pc}, {args})")


def _dispatch(g: FunctionGen, value: str, pc: int, args: str) -> str:
    """Call what ``value`` names: a subprogram (its address in the bytecode copy, as
    ``PSEUDO_FUNC`` loads give) directly, anything else through the trampoline, which
    resolves it as the interpreter does (a helper id, or a fault)."""
    e = g.e
    rel = e(f"sub i64 {value}, {g.ctx_load('text')}")
    done = e.fresh("callx.done")[1:]
    other = e.fresh("callx.other")[1:]
    cases = [(entry, e.fresh(f"callx.f{entry}.")[1:]) for entry in g.mod.entries]
    e.do(f"switch i64 {rel}, label %{other} [" +
         " ".join(f"i64 {8 * ent}, label %{lbl}" for ent, lbl in cases) + "]")
    results = []
    for entry, lbl in cases:
        e.label(lbl)
        r = _local_call(g, entry, pc, args)
        end = e.fresh("callx.end")[1:]
        e.do(f"br label %{end}")
        e.label(end)
        e.do(f"br label %{done}")
        results.append((r, end))
    e.label(other)
    r = _trampoline(g, MODE_CALLX, value, pc, args)
    e.do(f"br label %{done}")
    e.label(done)
    incoming = ", ".join(f"[ {v}, %{b} ]" for v, b in results + [(r, other)])
    return e(f"phi i64 {incoming}")


def _tail_return(g: FunctionGen) -> None:
    """After ``bpf_tail_call``: if the target ran, it replaced this function -- return its
    r0 (to the caller, or as the program's result at depth 0), as the interpreter does."""
    e = g.e
    st = g.ctx_load("status")
    tail = e(f"icmp eq i64 {st}, {int(Fault.TAILRET)}")
    ret, go = e.fresh("tailret")[1:], e.fresh("notail")[1:]
    e.do(f"br i1 {tail}, label %{ret}, label %{go}")
    e.label(ret)
    g.ctx_store("status", "0")
    value = g.ctx_load("exit_value")
    g.save_budget()
    e.do(f"ret i64 {value}")
    e.label(go)


def emit_call(g: FunctionGen, insn: isa.Instruction, pc: int) -> bool:
    g.budget_check(pc)
    g.save_budget()
    if insn.opcode == isa.CALLX:
        value = g.reg(insn.dst)
        r0 = _dispatch(g, value, pc, _args(g))
    elif insn.src == isa.CALL_LOCAL:
        r0 = _local_call(g, pc + 1 + insn.imm, pc, _args(g))
    elif insn.src == isa.CALL_KFUNC:    # through Python: pybpf.helpers.kfuncs
        r0 = _trampoline(g, MODE_HELPER, str(KFUNC_KEY | insn.imm & isa.U32), pc, _args(g))
    else:
        opts = g.mod.options
        native = NATIVE_HELPERS.get(insn.imm) \
            if opts.native_helpers and insn.imm not in opts.overridden else None
        r0 = native(g, insn, pc) if native is not None else None
        if r0 is None:
            r0 = _trampoline(g, MODE_HELPER, str(insn.imm), pc, _args(g))
            if insn.imm == HELPER_IDS["tail_call"]:
                _tail_return(g)
        elif insn.imm not in CALLING_NATIVES:
            g.load_budget()
            g.set_reg(0, r0)
            return False
    _after_call(g, r0)
    return False


def emit_ldx(g: FunctionGen, insn: isa.Instruction, pc: int) -> bool:
    size = isa.SIZE_BYTES[insn.opcode & 0x18]
    bits = size * 8
    p = g.pointer(pc, insn.src, insn.off, size, False)
    v = g.e(f"load i{bits}, ptr {p}, align 1")
    if bits != 64:
        ext = "sext" if insn.opcode & 0xE0 == isa.MEMSX else "zext"
        v = g.e(f"{ext} i{bits} {v} to i64")
    g.set_reg(insn.dst, v)
    return False


def emit_store(g: FunctionGen, insn: isa.Instruction, pc: int) -> bool:
    size = isa.SIZE_BYTES[insn.opcode & 0x18]
    bits = size * 8
    p = g.pointer(pc, insn.dst, insn.off, size, True)
    if insn.cls == isa.ST:
        v = str(insn.imm)
    else:
        v = g.reg(insn.src)
        v = v if bits == 64 else g.e(f"trunc i64 {v} to i{bits}")
    g.e.do(f"store i{bits} {v}, ptr {p}, align 1")
    return False


ATOMIC_RMW = {isa.ATOMIC_ADD: "add", isa.ATOMIC_OR: "or", isa.ATOMIC_AND: "and",
              isa.ATOMIC_XOR: "xor", isa.ATOMIC_XCHG & ~isa.ATOMIC_FETCH: "xchg"}


def emit_atomic(g: FunctionGen, insn: isa.Instruction, pc: int) -> bool:
    e = g.e
    size = isa.SIZE_BYTES[insn.opcode & 0x18]
    bits = size * 8
    t = _ity(bits)
    p = g.pointer(pc, insn.dst, insn.off, size, True)
    src = g.reg(insn.src)
    if bits == 32:
        src = g.trunc32(src)
    if insn.imm == isa.ATOMIC_CMPXCHG:
        r0 = g.reg(0)
        if bits == 32:
            r0 = g.trunc32(r0)
        pair = e(f"cmpxchg ptr {p}, {t} {r0}, {t} {src} seq_cst seq_cst, align {size}")
        old = e(f"extractvalue {{{t}, i1}} {pair}, 0")
        g.set_reg(0, g.zext(old, bits))
        return False
    op = ATOMIC_RMW[insn.imm & ~isa.ATOMIC_FETCH]
    old = e(f"atomicrmw {op} ptr {p}, {t} {src} seq_cst, align {size}")
    if insn.imm & isa.ATOMIC_FETCH:
        g.set_reg(insn.src, g.zext(old, bits))
    return False


def emit_lddw(g: FunctionGen, insn: isa.Instruction, pc: int) -> bool:
    src = insn.src
    if src == isa.PSEUDO_IMM64:
        value = str(isa.sext(insn.imm64, 64))
    elif src == isa.PSEUDO_BTF_ID:
        value = "0"
    elif src == isa.PSEUDO_FUNC:
        value = g.e(f"add i64 {g.ctx_load('text')}, {8 * (pc + 1 + insn.imm)}")
    else:
        value = g.mod.const(("lddw", pc), g)
    g.set_reg(insn.dst, value)
    return False


def emit_packet(g: FunctionGen, insn: isa.Instruction, pc: int) -> bool:
    """Legacy LD_ABS / LD_IND: big-endian load from the input data; outside it the whole
    program ends returning 0 (as the kernel and the interpreter do)."""
    e = g.e
    size = isa.SIZE_BYTES[insn.opcode & 0x18]
    bits = size * 8
    if insn.opcode & 0xE0 == isa.IND:
        s = e(f"add i64 {g.reg(insn.src)}, {insn.imm}")
        s = e(f"trunc i64 {s} to i32")
        off = e(f"sext i32 {s} to i64")
    else:
        off = str(insn.imm)
    length = g.packet("len")
    if off.startswith("%"):
        neg = e(f"icmp slt i64 {off}, 0")
        end = e(f"add i64 {off}, {size}")
        past = e(f"icmp sgt i64 {end}, {length}")
        bad = e(f"or i1 {neg}, {past}")
    else:               # LD_ABS: one comparison (a negative offset always misses)
        end = g.abs_checks.get(pc, -1)
        if end is None:     # an earlier load of this block already checked this window
            bad = "false"
        else:
            bad = e(f"icmp slt i64 {length}, {end}") if end >= 0 else "true"
    if bad == "false":
        ok = None
    else:
        ok = e.fresh("pkt")[1:]
    # every miss of the function shares one cold block (fewer blocks for LLVM to lay out)
    if ok is not None:
        g.packet_miss = True
        e.do(f"br i1 {bad}, label %pktmiss, label %{ok}, !prof !0")
        e.label(ok)
    base = g.packet("lo")
    addr = e(f"add i64 {base}, {off}")
    p = e(f"inttoptr i64 {addr} to ptr")
    v = e(f"load i{bits}, ptr {p}, align 1")
    if bits > 8:
        v = e(f"call i{bits} @llvm.bswap.i{bits}(i{bits} {v})")
    g.set_reg(0, g.zext(v, bits))
    return False


def _family(insn: isa.Instruction) -> str:
    cls = insn.cls
    op = insn.opcode
    if cls in (isa.ALU, isa.ALU64):
        return "alu"
    if cls in (isa.JMP, isa.JMP32):
        kind = op & 0xF0
        if kind == isa.EXIT:
            return "exit"
        if kind == isa.CALL:
            return "call"
        return "jump"
    if cls == isa.LDX:
        return "ldx"
    if cls == isa.ST:
        return "store"
    if cls == isa.STX:
        return "atomic" if op & 0xE0 == isa.ATOMIC else "store"
    if op == isa.LDDW:
        return "lddw"
    return "packet"


EMITTERS: dict[str, Callable[[FunctionGen, isa.Instruction, int], bool]] = {
    "alu": emit_alu, "jump": emit_jump, "exit": emit_exit, "call": emit_call,
    "ldx": emit_ldx, "store": emit_store, "atomic": emit_atomic, "lddw": emit_lddw,
    "packet": emit_packet,
}


# --- native helper paths -------------------------------------------------------------------------

def _native_ktime(clock: int) -> Callable[[FunctionGen, isa.Instruction, int], str]:
    def emit(g: FunctionGen, insn: isa.Instruction, pc: int) -> str:
        e = g.e
        ts = g.temp("{ i64, i64 }")
        e.do(f"call i32 @clock_gettime(i32 {clock}, ptr {ts})")
        sec = e(f"load i64, ptr {ts}, align 8")
        nsp = e(f"getelementptr i64, ptr {ts}, i64 1")
        nsec = e(f"load i64, ptr {nsp}, align 8")
        ns = e(f"mul i64 {sec}, 1000000000")
        return e(f"add i64 {ns}, {nsec}")
    return emit


def _native_prandom(g: FunctionGen, insn: isa.Instruction, pc: int) -> str:
    """xorshift64* on ``ctx.rng`` (seeded from os.urandom by the runtime)."""
    e = g.e
    x = g.ctx_load("rng")
    for op, n in (("lshr", 12), ("shl", 25), ("lshr", 27)):
        s = e(f"{op} i64 {x}, {n}")
        x = e(f"xor i64 {x}, {s}")
    g.ctx_store("rng", x)
    m = e(f"mul i64 {x}, 2685821657736338717")
    return e(f"lshr i64 {m}, 32")


#: array map types looked up natively (the per-CPU one adds the current CPU's block)
ARRAY_TYPES = frozenset({"array", "percpu_array"})


def native_lookup(shape: MapShape) -> bool:
    """Whether ``bpf_map_lookup_elem`` on a map of this shape runs natively."""
    return shape.type in ARRAY_TYPES or hashindex.supported(shape.type, shape.key_size,
                                                            shape.max_entries)


def _native_map_lookup(g: FunctionGen, insn: isa.Instruction, pc: int) -> str | None:
    """``bpf_map_lookup_elem`` on an array or hash map known at compile time. Arrays:
    bounds-checked index arithmetic, as the kernel's ``array_map_gen_lookup`` inlines it (a
    per-CPU array's copies follow each other, ``max_entries`` values per CPU, and the CPU is
    ``ctx.cpu``); hash maps: :func:`_native_hash_lookup`."""
    st = g.plan.states[pc][1]
    if st is None or st[0] != an.MAP or st[1] is None:
        return None
    shape = g.mod.shapes[st[1]] if st[1] < len(g.mod.shapes) else None
    if shape is None or not native_lookup(shape):
        return None
    if shape.type not in ARRAY_TYPES:
        return _native_hash_lookup(g, pc, st[1], shape)
    e = g.e
    p = g.pointer(pc, 2, 0, 4, False)
    key = e(f"load i32, ptr {p}, align 1")
    key = e(f"zext i32 {key} to i64")
    base = g.mod.const(("map_base", st[1]), g)
    inside = e(f"icmp ult i64 {key}, {shape.max_entries}")
    if shape.type == "percpu_array":
        block = e(f"mul i64 {g.ctx_load('cpu')}, {shape.max_entries}")
        key = e(f"add i64 {key}, {block}")
    off = e(f"mul i64 {key}, {shape.stride}")
    addr = e(f"add i64 {base}, {off}")
    return e(f"select i1 {inside}, i64 {addr}, i64 0")


def _lru_touch(g: FunctionGen, index: int, shape: MapShape, slot: str) -> None:
    """Record a use of ``slot`` of an LRU map in its native log (:mod:`.hashindex`)."""
    e = g.e
    lru = e(f"inttoptr i64 {g.mod.const(('hash_lru', index), g)} to ptr")
    count_p = e(f"getelementptr i64, ptr {lru}, i64 1")
    sp = e(f"getelementptr i64, ptr {lru}, i64 {hashindex.LRU_HEADER}")
    sp = e(f"getelementptr i64, ptr {sp}, i64 {slot}")
    old = e(f"load i64, ptr {sp}, align 8")
    fresh = e(f"icmp eq i64 {old}, 0")
    count = e(f"load i64, ptr {count_p}, align 8")
    lp = e(f"getelementptr i64, ptr {lru}, i64 {hashindex.LRU_HEADER + shape.max_entries}")
    lp = e(f"getelementptr i64, ptr {lp}, i64 {count}")
    e.do(f"store i64 {slot}, ptr {lp}, align 8")
    inc = e(f"zext i1 {fresh} to i64")
    e.do(f"store i64 {e(f'add i64 {count}, {inc}')}, ptr {count_p}, align 8")
    clock = e(f"add i64 {e(f'load i64, ptr {lru}, align 8')}, 1")
    e.do(f"store i64 {clock}, ptr {lru}, align 8")
    e.do(f"store i64 {clock}, ptr {sp}, align 8")


def _native_hash_lookup(g: FunctionGen, pc: int, index: int, shape: MapShape) -> str:
    """``bpf_map_lookup_elem`` on a hash map: probe the map's native index
    (:mod:`.hashindex`, which the map keeps in step with its Python dict) -- hash the key's
    32-bit words, walk the table from there, compare keys word by word -- and return the
    value's address in the map's storage or 0, as ``lookup_address`` does: per-CPU maps give
    the current CPU's copy (``cpu * stride * max_entries`` further), LRU maps log the use."""
    e = g.e
    n = shape.key_size // 4
    p = g.pointer(pc, 2, 0, shape.key_size, False)
    words = []
    for j in range(n):
        q = p if j == 0 else e(f"getelementptr i8, ptr {p}, i64 {4 * j}")
        words.append(e(f"load i32, ptr {q}, align 1"))
    h = str(hashindex.FNV_OFFSET - (1 << 64))
    for w in words:
        x = e(f"zext i32 {w} to i64")
        h = e(f"xor i64 {h}, {x}")
        h = e(f"mul i64 {h}, {hashindex.FNV_PRIME}")
    sh = e(f"lshr i64 {h}, 29")
    h = e(f"xor i64 {h}, {sh}")
    mask = hashindex.capacity_for(shape.max_entries) - 1
    start = e(f"and i64 {h}, {mask}")
    table = e(f"inttoptr i64 {g.mod.const(('hash_table', index), g)} to ptr")
    keys = e(f"inttoptr i64 {g.mod.const(('hash_keys', index), g)} to ptr")
    base = g.mod.const(("map_base", index), g)
    pre = e.fresh("hl.pre")[1:]
    e.do(f"br label %{pre}")
    e.label(pre)
    head, cmp, nxt, found, done = (e.fresh(x)[1:] for x in
                                   ("hl.head", "hl.cmp", "hl.next", "hl.found", "hl.done"))
    e.do(f"br label %{head}")
    e.label(head)
    i = e.fresh("hl.i")
    i_next = e.fresh("hl.inext")
    e.do(f"{i} = phi i64 [ {start}, %{pre} ], [ {i_next}, %{nxt} ]")
    ep = e(f"getelementptr i32, ptr {table}, i64 {i}")
    entry = e(f"load i32, ptr {ep}, align 4")
    empty = e(f"icmp eq i32 {entry}, 0")
    e.do(f"br i1 {empty}, label %{done}, label %{cmp}")
    e.label(cmp)
    deleted = e(f"icmp eq i32 {entry}, -1")
    slot32 = e(f"sub i32 {entry}, 1")
    slot = e(f"zext i32 {slot32} to i64")
    koff = e(f"mul i64 {slot}, {shape.key_size}")
    kp = e(f"getelementptr i8, ptr {keys}, i64 {koff}")
    same = "true"
    for j, w in enumerate(words):
        q = kp if j == 0 else e(f"getelementptr i8, ptr {kp}, i64 {4 * j}")
        k = e(f"load i32, ptr {q}, align 4")
        eq = e(f"icmp eq i32 {k}, {w}")
        same = eq if same == "true" else e(f"and i1 {same}, {eq}")
    live = e(f"xor i1 {deleted}, true")
    hit = e(f"and i1 {live}, {same}")
    e.do(f"br i1 {hit}, label %{found}, label %{nxt}")
    e.label(nxt)
    inc = e(f"add i64 {i}, 1")
    e.do(f"{i_next} = and i64 {inc}, {mask}")
    e.do(f"br label %{head}")
    e.label(found)
    off = e(f"mul i64 {slot}, {shape.stride}")
    if shape.type in hashindex.PERCPU_TYPES:
        cpu_off = e(f"mul i64 {g.ctx_load('cpu')}, {shape.stride * shape.max_entries}")
        off = e(f"add i64 {off}, {cpu_off}")
    addr = e(f"add i64 {base}, {off}")
    if shape.type in hashindex.LRU_TYPES:
        _lru_touch(g, index, shape, slot)
    tail = e.fresh("hl.hit")[1:]
    e.do(f"br label %{tail}")
    e.label(tail)
    e.do(f"br label %{done}")
    e.label(done)
    return e(f"phi i64 [ 0, %{head} ], [ {addr}, %{tail} ]")


def _native_loop(g: FunctionGen, insn: isa.Instruction, pc: int) -> str:
    """``bpf_loop(nr_loops, callback, ctx, flags)`` as a native loop calling the callback
    subprogram directly (kernel/bpf/bpf_iter.c: flags must be 0, at most 1 << 23 loops, a
    non-zero callback result stops after i + 1 iterations)."""
    e = g.e
    i_slot, res = g.temp(), g.temp()
    nr, fn, cctx, flags = (g.reg(r) for r in (1, 2, 3, 4))
    bad_flags = e(f"icmp ne i64 {flags}, 0")
    big = e(f"icmp ugt i64 {nr}, {1 << 23}")
    err = e(f"select i1 {big}, i64 -7, i64 0")
    err = e(f"select i1 {bad_flags}, i64 -22, i64 {err}")
    e.do(f"store i64 {err}, ptr {res}, align 8")
    e.do(f"store i64 0, ptr {i_slot}, align 8")
    refused = e(f"or i1 {bad_flags}, {big}")
    head, body, brk, count, fin = (e.fresh(x)[1:] for x in
                                   ("loop.head", "loop.body", "loop.break", "loop.count",
                                    "loop.end"))
    e.do(f"br i1 {refused}, label %{fin}, label %{head}")
    e.label(head)
    i = e(f"load i64, ptr {i_slot}, align 8")
    more = e(f"icmp ult i64 {i}, {nr}")
    e.do(f"br i1 {more}, label %{body}, label %{count}")
    e.label(body)
    r = _dispatch(g, fn, pc, f"i64 {i}, i64 {cctx}, i64 0, i64 0, i64 0")
    g.check_status()
    nxt = e(f"add i64 {i}, 1")
    e.do(f"store i64 {nxt}, ptr {i_slot}, align 8")
    stop = e(f"icmp ne i64 {r}, 0")
    e.do(f"br i1 {stop}, label %{brk}, label %{head}")
    e.label(brk)
    e.do(f"store i64 {nxt}, ptr {res}, align 8")
    e.do(f"br label %{fin}")
    e.label(count)
    e.do(f"store i64 {i}, ptr {res}, align 8")
    e.do(f"br label %{fin}")
    e.label(fin)
    return e(f"load i64, ptr {res}, align 8")


def _native_tail_call(g: FunctionGen, insn: isa.Instruction, pc: int) -> str | None:
    """``bpf_tail_call`` on a prog_array known at compile time (:mod:`.tailcall`):
    ``pybpf.tail_prepare`` finds the target and hands it the run's state; from a program's
    entry function at depth 0 the call then *is* a jump -- ``musttail`` into the target's
    entry, so a chain of 33 does not nest 33 native frames (whose returns the CPU would
    mispredict) -- and deeper down ``pybpf.tail_enter`` calls it, after which this function
    returns the target's r0 (the tail call replaced it)."""
    st = g.plan.states[pc][2]
    if st is None or st[0] != an.MAP or st[1] is None or st[1] >= len(g.mod.shapes):
        return None
    shape = g.mod.shapes[st[1]]
    if shape.type != "prog_array":
        return None
    e = g.e
    table = g.mod.const(("tail_table", st[1]), g)     # made by the runtime either way
    offset = table_offsets(g.mod.shapes).get(st[1])
    table = e(f"inttoptr i64 {table} to ptr") if offset is None \
        else e(f"getelementptr i64, ptr %ctx, i64 {offset}")
    if g.plan.entry == 0:
        _entry_tail_jump(g, table, shape.max_entries)
    t = e(f"call i64 @pybpf.tail_prepare(ptr %ctx, ptr {table}, i64 {shape.max_entries}, "
          f"i64 {g.reg(3)}, i64 {st[1]}, i64 {pc})")
    go, miss, nest, join = (e.fresh(x)[1:] for x in ("tc.go", "tc.miss", "tc.nest",
                                                     "tc.join"))
    found = e(f"icmp sgt i64 {t}, 0")
    e.do(f"br i1 {found}, label %{go}, label %{miss}")
    e.label(go)
    tp = e(f"inttoptr i64 {t} to ptr")
    if g.plan.entry == 0:
        jump = e.fresh("tc.jump")[1:]
        top = e("icmp eq i64 %depth, 0")
        e.do(f"br i1 {top}, label %{jump}, label %{nest}")
        e.label(jump)
        _jump(g, tp, t)
    else:
        e.do(f"br label %{nest}")
    e.label(nest)
    entered = e(f"call i64 @pybpf.tail_enter(ptr %ctx, ptr {tp}, i64 {pc})")
    e.do(f"br label %{join}")
    e.label(miss)
    e.do(f"br label %{join}")
    e.label(join)
    r0 = e(f"phi i64 [ {entered}, %{nest} ], [ {t}, %{miss} ]")
    _tail_return(g)
    return r0


def _jump(g: FunctionGen, tp: str, t: str, args: tuple[str, str] | None = None) -> None:
    """Jump (``musttail``) from the entry function at depth 0 into the target context ``tp``
    (address ``t``), handed over already. The chain's *root* -- the context its driver or
    ``pybpf.tail_enter`` called -- records that it jumped and to which context, so settling
    the run is one step to the last context, whatever the chain's length."""
    e = g.e
    root_i = g.ctx_load("root")
    root = e(f"inttoptr i64 {root_i} to ptr")
    e.do(f"store i64 {int(Fault.TAILJUMP)}, ptr {root}, align 8")     # status is word 0
    jumped = e(f"getelementptr i64, ptr {root}, i64 {C['jumped']}")
    e.do(f"store i64 {t}, ptr {jumped}, align 8")
    words = {name: e(f"getelementptr i64, ptr {tp}, i64 {C[name]}")
             for name in ("root", "entry", "run_r1", "run_r2")}
    e.do(f"store i64 {root_i}, ptr {words['root']}, align 8")
    fn = e(f"load ptr, ptr {words['entry']}, align 8")
    if args is None:        # the run's r1/r2, as handed over to the target
        args = (e(f"load i64, ptr {words['run_r1']}, align 8"),
                e(f"load i64, ptr {words['run_r2']}, align 8"))
    r = e(f"musttail call i64 {fn}(ptr {tp}, i64 {args[0]}, i64 {args[1]}, i64 0, i64 0, "
          "i64 0, i64 0)")
    e.do(f"ret i64 {r}")


def _tail_room(g, go: str, full: str) -> str:
    """The chain's tail-call count, branching to ``go`` while another tail call is allowed
    (fewer than MAX_TAIL_CALL_CNT so far) and to ``full`` otherwise; emits at ``go``."""
    e = g.e
    cnt = g.ctx_load("tail_cnt")
    e.do(f"br i1 {e(f'icmp ult i64 {cnt}, {MAX_TAIL_CALL_CNT}')}, label %{go}, label %{full}")
    e.label(go)
    return cnt


def _entry_tail_jump(g: FunctionGen, table: str, n: int) -> None:
    """The fast paths of a tail call from a program's entry function (depth 0), inline as
    the kernel's JIT emits its tail call (bounds check, ``tail_call_cnt`` check, load of the
    target, jump); anything else -- a miss, a full chain, a slot not resolved yet, a call
    from deeper down -- goes on to ``pybpf.tail_prepare`` after this.

    * The slot holds this very program (the table's second half holds this context's own
      address then, :meth:`.tailcall.TailCalls.resolve`): restart this function on its own
      context -- no hand-over, no settling; the budget is given back and the jump is a
      direct ``jmp`` reusing the frame, as the kernel reuses the caller's stack.
    * The slot's target context is known: hand it the run's state (:data:`.tailcall.HANDED`,
      the chain count, its input window) and jump (:func:`_jump`)."""
    e = g.e
    idx = e(f"and i64 {g.reg(3)}, {isa.U32}")
    inside = e(f"icmp ult i64 {idx}, {n}")
    look, check, go, known, kcheck, kgo, slow = (e.fresh(x)[1:] for x in (
        "ts.look", "ts.check", "ts.go", "tk.known", "tk.check", "tk.go", "ts.slow"))
    e.do(f"br i1 {inside}, label %{look}, label %{slow}")
    e.label(look)
    top = e("icmp eq i64 %depth, 0")
    word = e(f"getelementptr i64, ptr {table}, i64 {e(f'add i64 {idx}, {n}')}")
    mine = e(f"icmp eq i64 {e(f'load i64, ptr {word}, align 8')}, "
             f"{e('ptrtoint ptr %ctx to i64')}")
    e.do(f"br i1 {e(f'and i1 {mine}, {top}')}, label %{check}, label %{known}")
    e.label(check)
    cnt = _tail_room(g, go, slow)
    g.ctx_store("tail_cnt", e(f"add i64 {cnt}, 1"))
    if g.checked:
        g.ctx_store("budget", g.ctx_load("budget_full"))
    r1, r2 = g.ctx_load("run_r1"), g.ctx_load("run_r2")
    r = e(f"musttail call i64 @{g.mod.prefix}f0(ptr %ctx, i64 {r1}, i64 {r2}, i64 0, i64 0, "
          "i64 0, i64 0)")
    e.do(f"ret i64 {r}")
    e.label(known)
    d = e(f"load i64, ptr {e(f'getelementptr i64, ptr {table}, i64 {idx}')}, align 8")
    target = e(f"icmp ugt i64 {d}, {TAIL_FULL}")
    e.do(f"br i1 {e(f'and i1 {target}, {top}')}, label %{kcheck}, label %{slow}")
    e.label(kcheck)
    kcnt = _tail_room(g, kgo, slow)
    tp = e(f"inttoptr i64 {d} to ptr")

    def put(name: str, value: str) -> None:
        e.do(f"store i64 {value}, ptr {e(f'getelementptr i64, ptr {tp}, i64 {C[name]}')}, "
             "align 8")

    put("tail_cnt", e(f"add i64 {kcnt}, 1"))
    # unchecked code never reads its budget (a target runs unchecked as its caller does)
    handed = {name: g.ctx_load(name) for name in HANDED
              if g.checked or name != "budget_full"}
    for name, value in handed.items():
        put(name, value)
    if g.checked:
        put("budget", handed["budget_full"])
    put("status", "0")
    table_word = e(f"getelementptr i64, ptr {tp}, i64 {C['regions']}")
    regions = e(f"inttoptr i64 {e(f'load i64, ptr {table_word}, align 8')} to ptr")
    e.do(f"store i64 {handed['data_lo']}, ptr {regions}, align 8")     # entry 0: the input
    span = e(f"getelementptr i64, ptr {regions}, i64 1")
    e.do(f"store i64 {handed['data_len']}, ptr {span}, align 8")
    _jump(g, tp, d, (handed["run_r1"], handed["run_r2"]))
    e.label(slow)


#: native paths that call BPF code, after which the caller must test the status
CALLING_NATIVES = {HELPER_IDS["loop"], HELPER_IDS["tail_call"]}

NATIVE_HELPERS: dict[int, Callable[[FunctionGen, isa.Instruction, int], str | None]] = {
    HELPER_IDS["loop"]: _native_loop,
    HELPER_IDS["ktime_get_ns"]: _native_ktime(1),         # CLOCK_MONOTONIC
    HELPER_IDS["ktime_get_boot_ns"]: _native_ktime(7),    # CLOCK_BOOTTIME
    HELPER_IDS["get_prandom_u32"]: _native_prandom,
    HELPER_IDS["map_lookup_elem"]: _native_map_lookup,
    HELPER_IDS["tail_call"]: _native_tail_call,
    **RING_NATIVES,
}


# --- the module ----------------------------------------------------------------------------------

SLOW_PATH = f"""
define {{i64, i64}} @pybpf.slow(ptr noalias nocapture %ctx, i64 %addr, i64 %size,
                                       i64 %write, i64 %pc) noinline cold nounwind {{
entry:
  %tp = getelementptr i64, ptr %ctx, i64 {C['regions']}
  %tab.i = load i64, ptr %tp, align 8
  %tab = inttoptr i64 %tab.i to ptr
  %np = getelementptr i64, ptr %ctx, i64 {C['nregions']}
  %n = load i64, ptr %np, align 8
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %i.next, %next ]
  %more = icmp ult i64 %i, %n
  br i1 %more, label %body, label %miss
body:
  %w = mul i64 %i, {REGION_WORDS}
  %plo = getelementptr i64, ptr %tab, i64 %w
  %lo = load i64, ptr %plo, align 8
  %pspan = getelementptr i64, ptr %plo, i64 1
  %span = load i64, ptr %pspan, align 8
  %pwr = getelementptr i64, ptr %plo, i64 2
  %wr = load i64, ptr %pwr, align 8
  %d = sub i64 %addr, %lo
  %fits = icmp uge i64 %span, %size
  %lim = sub i64 %span, %size
  %within = icmp ule i64 %d, %lim
  %in = and i1 %fits, %within
  %denied = icmp ugt i64 %write, %wr
  %okperm = xor i1 %denied, true
  %hit = and i1 %in, %okperm
  br i1 %hit, label %found, label %next
next:
  %i.next = add i64 %i, 1
  br label %loop
found:
  %big = icmp uge i64 %span, 8
  %clo = select i1 %big, i64 %lo, i64 ptrtoint (ptr @pybpf.guard to i64)
  %cspan = select i1 %big, i64 %span, i64 8
  %r1 = insertvalue {{i64, i64}} undef, i64 %clo, 0
  %r2 = insertvalue {{i64, i64}} %r1, i64 %cspan, 1
  ret {{i64, i64}} %r2
miss:
  %kind = add i64 %write, {int(Fault.READ)}
  call void @pybpf.fault(ptr %ctx, i64 %kind, i64 %pc, i64 %addr, i64 %size)
  ret {{i64, i64}} zeroinitializer
}}

define void @pybpf.fault(ptr noalias nocapture %ctx, i64 %kind, i64 %pc, i64 %addr,
                                  i64 %size) noinline cold nounwind {{
  %p0 = getelementptr i64, ptr %ctx, i64 {C['status']}
  store i64 %kind, ptr %p0, align 8
  %p1 = getelementptr i64, ptr %ctx, i64 {C['fault_pc']}
  store i64 %pc, ptr %p1, align 8
  %p2 = getelementptr i64, ptr %ctx, i64 {C['fault_addr']}
  store i64 %addr, ptr %p2, align 8
  %p3 = getelementptr i64, ptr %ctx, i64 {C['fault_size']}
  store i64 %size, ptr %p3, align 8
  ret void
}}
"""

#: what every program module declares: the shared routines live in RUNTIME_IR, compiled once
#: per engine (they would otherwise cost most of a small program's compile time)
RUNTIME_IR = """
@pybpf.guard = global [8 x i64] zeroinitializer, align 8
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)
""" + SLOW_PATH + RING_IR + TAIL_IR

PRELUDE = f"""
@pybpf.guard = external global [8 x i64], align 8
declare {{i64, i64}} @pybpf.slow(ptr noalias nocapture, i64, i64, i64, i64) cold nounwind
declare void @pybpf.fault(ptr noalias nocapture, i64, i64, i64, i64) cold nounwind
declare i32 @clock_gettime(i32, ptr) nounwind
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)
declare i16 @llvm.bswap.i16(i16)
declare i32 @llvm.bswap.i32(i32)
declare i64 @llvm.bswap.i64(i64)
{RING_DECLARATIONS}{TAIL_DECLARATION}
!0 = !{{!"branch_weights", i32 1, i32 1000}}
!1 = !{{!"branch_weights", i32 1000, i32 1}}
!2 = !{{}}
"""


class ModuleGen:
    """Builds the IR module of a whole program."""

    def __init__(self, code: list, *, options: Options, shapes: list[MapShape],
                 map_index: dict[int, int], prefix: str = ""):
        self.code = code
        self.prefix = prefix            # for several programs in one module
        self.options = options
        self.shapes = shapes
        self.map_index = map_index
        self.entries = an.function_entries(code)
        self.consts: list[tuple[str, int]] = []
        self._const_index: dict[tuple[str, int], int] = {}

    def const(self, key: tuple[str, int], g: FunctionGen) -> str:
        """Load run-time constant ``key`` from ``ctx.consts``."""
        idx = self._const_index.get(key)
        if idx is None:
            idx = self._const_index[key] = len(self.consts)
            self.consts.append(key)
        base = g.e(f"load i64, ptr {g.ctx(C['consts'])}, align 8, !invariant.load !2")
        table = g.e(f"inttoptr i64 {base} to ptr")
        slot = g.e(f"getelementptr i64, ptr {table}, i64 {idx}")
        return g.e(f"load i64, ptr {slot}, align 8, !invariant.load !2")

    def build(self, extra: str = "", *, prelude: bool = True) -> ModuleIR:
        parts = [PRELUDE] if prelude else []
        succ = an.successor_table(self.code)
        for entry in self.entries:
            inline = frozenset(i for i, shape in enumerate(self.shapes)
                               if native_lookup(shape) and self.options.native_helpers
                               and an.MAP_LOOKUP not in self.options.overridden)
            plan = an.plan_function(self.code, entry, self.map_index, inline, succ)
            parts.extend(FunctionGen(self, plan).emit())
        parts.append(self.call_entry())
        parts.append(extra)
        return ModuleIR("\n".join(parts), self.consts, self.entries)

    def call_entry(self) -> str:
        """``<prefix>pybpf_call(ctx, fn, r1..r5, depth)``: run the subprogram whose address
        (a ``PSEUDO_FUNC`` value) is ``fn``, for helpers that call back into the program
        (``bpf_for_each_map_elem`` through ``env.call_function``)."""
        p = self.prefix
        args = ", ".join(f"i64 %a{i}" for i in range(1, 6))
        cases = " ".join(f"i64 {8 * e}, label %c{e}" for e in self.entries)
        calls = "\n".join(f"c{e}:\n  %r{e} = call i64 @{p}f{e}(ptr %ctx, {args}, i64 %depth)\n"
                          f"  ret i64 %r{e}" for e in self.entries)
        return f"""
define i64 @{p}pybpf_call(ptr %ctx, i64 %fn, {args}, i64 %depth) {{
entry:
  %deep = icmp uge i64 %depth, {isa.MAX_CALL_DEPTH}
  br i1 %deep, label %toodeep, label %go
toodeep:
  call void @pybpf.fault(ptr %ctx, i64 {int(Fault.DEPTH)}, i64 0, i64 0, i64 0)
  ret i64 0
go:
  %tp = getelementptr i64, ptr %ctx, i64 {C['text']}
  %text = load i64, ptr %tp, align 8
  %rel = sub i64 %fn, %text
  switch i64 %rel, label %bad [ {cases} ]
{calls}
bad:
  call void @pybpf.fault(ptr %ctx, i64 {int(Fault.CALLX)}, i64 0, i64 %fn, i64 0)
  ret i64 0
}}
"""
