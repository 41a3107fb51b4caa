"""What the code generator needs to know about a program before emitting IR.

* **Functions**: one LLVM function per entry point (slot 0, every ``call`` target and every
  ``PSEUDO_FUNC`` address), holding every instruction reachable from it by jumps. Like the
  interpreter, nothing assumes subprograms are contiguous or well formed; well-formed programs
  simply get their own code per function.
* **Blocks**: leaders are the entry, jump targets, fall-through successors of conditional
  jumps and instructions after calls -- so the instruction budget can be charged per block and
  still fail at the same instruction as the interpreter (a call runs other blocks in between).
* **Frame-pointer tracking**: a forward data-flow pass over the register file, in the spirit of
  the kernel verifier's ``PTR_TO_STACK`` with a constant offset, finds registers that hold
  ``r10 + constant`` and registers that hold a map pointer from a 64-bit load. Accesses through
  the former become constant-offset accesses to the frame (no run-time check is needed and
  LLVM can keep stack slots in registers); the latter let ``bpf_map_lookup_elem`` on an array
  map be inlined, as the kernel's JIT inlines it. A frame *escapes* when a stack address is
  used as a plain value (passed to a call, stored, compared, returned): only then must it live
  in addressable memory that helpers can see.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import isa

#: abstract values: None = unknown, (FP, off) = r10 + off, (MAP, index) = map pointer
FP, MAP = 0, 1
State = tuple


def slot_code(insns) -> list[isa.Instruction | None]:
    """Instructions by slot (the second slot of a 64-bit load holds None)."""
    code: list[isa.Instruction | None] = []
    for insn in insns:
        code.append(insn)
        if insn.slots == 2:
            code.append(None)
    return code


def is_call(insn: isa.Instruction) -> bool:
    return insn.opcode in (isa.JMP | isa.CALL, isa.CALLX)


def successors(code: list, pc: int) -> list[int]:
    """Slots execution may continue at after ``pc`` (may lie outside the program)."""
    insn = code[pc]
    op = insn.opcode
    cls = insn.cls
    if cls in (isa.JMP, isa.JMP32):
        kind = op & 0xF0
        if kind == isa.EXIT and cls == isa.JMP:
            return []
        if kind == isa.JA:
            return [insn.jump_target(pc)]
        if kind != isa.CALL:
            return [pc + 1, insn.jump_target(pc)]
    return [pc + insn.slots]


def valid(code: list, pc: int) -> bool:
    return 0 <= pc < len(code) and code[pc] is not None


@dataclass
class FunctionPlan:
    """One LLVM function: its entry slot, reachable instructions and block structure."""

    entry: int
    pcs: list[int]                         # reachable slots in program order
    leaders: set[int]
    bad_targets: set[int]                  # successors that are not instructions
    states: dict[int, State] = field(default_factory=dict)
    escapes: bool = False                  # a stack address is used as a value
    checkpoints: set[int] = field(default_factory=set)   # entry and targets of back edges
    calls: bool = False

    def block_of(self, pc: int) -> list[int]:
        """Slots of the block that starts at leader ``pc``."""
        out = []
        i = self._index[pc]
        while i < len(self.pcs):
            p = self.pcs[i]
            if out and p in self.leaders:
                break
            out.append(p)
            i += 1
        return out

    def __post_init__(self) -> None:
        self._index = {p: i for i, p in enumerate(self.pcs)}


def function_entries(code: list) -> list[int]:
    entries = {0}
    for pc, insn in enumerate(code):
        if insn is None:
            continue
        if insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_LOCAL:
            entries.add(pc + 1 + insn.imm)
        elif insn.opcode == isa.LDDW and insn.src == isa.PSEUDO_FUNC:
            entries.add(pc + 1 + insn.imm)
    return sorted(e for e in entries if valid(code, e))


def successor_table(code: list) -> list[list[int] | None]:
    """``successors`` of every slot, computed once per program (None for second slots)."""
    return [successors(code, pc) if insn is not None else None for pc, insn in enumerate(code)]


def plan_function(code: list, entry: int, map_index: dict[int, int],
                  inline_maps: frozenset[int] = frozenset(),
                  succ: list | None = None) -> FunctionPlan:
    succ_of = succ if succ is not None else successor_table(code)
    reach: set[int] = set()
    bad: set[int] = set()
    leaders = {entry}
    work = [entry]
    while work:
        pc = work.pop()
        if pc in reach:
            continue
        reach.add(pc)
        insn = code[pc]
        succ = succ_of[pc]
        if len(succ) == 2 or (insn.is_jump and len(succ) == 1):
            leaders.update(succ)
        if is_call(insn):
            leaders.update(succ)    # a call ends a block (it runs other blocks in between)
        for s in succ:
            if valid(code, s):
                work.append(s)
            else:
                bad.add(s)
    plan = FunctionPlan(entry, sorted(reach), leaders & reach | {entry}, bad)
    plan.calls = any(is_call(code[p]) for p in plan.pcs)
    plan.checkpoints = {entry} | {s for p in plan.pcs for s in succ_of[p]
                                  if s <= p and valid(code, s)}
    _track(code, plan, map_index, inline_maps, succ_of)
    return plan


# --- register tracking ------------------------------------------------------------------------

def _join(a: State, b: State) -> State:
    return tuple(x if x == y else None for x, y in zip(a, b))


def transfer(insn: isa.Instruction, state: State, pc: int, map_index: dict[int, int]) -> State:
    op = insn.opcode
    cls = insn.cls
    s = list(state)
    if cls == isa.ALU64 and op & 0xF0 in (isa.MOV, isa.ADD, isa.SUB):
        kind = op & 0xF0
        cur = s[insn.dst]
        if kind == isa.MOV and op & isa.X and insn.off == 0:
            s[insn.dst] = s[insn.src]
        elif kind != isa.MOV and not op & isa.X and cur is not None and cur[0] == FP:
            delta = insn.imm if kind == isa.ADD else -insn.imm
            s[insn.dst] = (FP, cur[1] + delta)
        else:
            s[insn.dst] = None
    elif op == isa.LDDW:
        idx = map_index.get(pc)
        s[insn.dst] = (MAP, idx) if idx is not None else None
    elif is_call(insn):
        s[0] = None          # r1-r5 are restored after the call, as the interpreter does
    elif cls in (isa.ALU, isa.ALU64, isa.LDX):
        s[insn.dst] = None
    elif cls == isa.STX and op & 0xE0 == isa.ATOMIC:
        if insn.imm == isa.ATOMIC_CMPXCHG:
            s[0] = None
        elif insn.imm & isa.ATOMIC_FETCH:
            s[insn.src] = None
    elif cls == isa.LD:
        s[0] = None
    return tuple(s)


def value_reads(insn: isa.Instruction) -> tuple[int, ...]:
    """Registers whose *value* an instruction uses (not as the base of a memory access)."""
    op = insn.opcode
    cls = insn.cls
    kind = op & 0xF0
    if cls in (isa.ALU, isa.ALU64):
        if cls == isa.ALU64 and kind == isa.MOV:
            return () if not op & isa.X or insn.off == 0 else (insn.src,)
        if cls == isa.ALU64 and kind in (isa.ADD, isa.SUB) and not op & isa.X:
            return ()        # tracked: r10 + constant stays a frame address
        regs = () if kind == isa.MOV else (insn.dst,)
        return regs + ((insn.src,) if op & isa.X and kind != isa.END else ())
    if cls in (isa.JMP, isa.JMP32):
        if kind == isa.CALL:
            return (1, 2, 3, 4, 5) + ((insn.dst,) if op & isa.X else ())
        if kind == isa.EXIT:
            return (0,)
        if kind == isa.JA:
            return ()
        return (insn.dst,) + ((insn.src,) if op & isa.X else ())
    if cls == isa.STX:
        if op & 0xE0 == isa.ATOMIC and insn.imm == isa.ATOMIC_CMPXCHG:
            return (insn.src, 0)
        return (insn.src,)
    if cls == isa.LD and op & 0xE0 == isa.IND:
        return (insn.src,)
    return ()


#: bpf_map_lookup_elem: inlined for array maps, when its key pointer is only read natively
MAP_LOOKUP = 1


def _track(code: list, plan: FunctionPlan, map_index: dict[int, int],
           inline_maps: frozenset[int] = frozenset(), succ_of: list | None = None) -> None:
    succ_of = succ_of if succ_of is not None else successor_table(code)
    n = len(code)
    start: State = tuple([None] * 10 + [(FP, 0)])
    states: dict[int, State] = {plan.entry: start}
    work = [plan.entry]
    while work:
        pc = work.pop()
        insn = code[pc]
        out = transfer(insn, states[pc], pc, map_index)
        for s in succ_of[pc]:
            if not (0 <= s < n and code[s] is not None):
                continue
            old = states.get(s)
            new = out if old is None else _join(old, out)
            if new != old:
                states[s] = new
                work.append(s)
    plan.states = states
    for pc in plan.pcs:
        st = states[pc]
        reads = value_reads(code[pc])
        insn = code[pc]
        if insn.opcode == isa.JMP | isa.CALL and insn.src == isa.CALL_HELPER and \
                insn.imm == MAP_LOOKUP and st[1] is not None and st[1][0] == MAP and \
                st[1][1] in inline_maps:
            reads = ()      # an inlined array lookup reads the key like a load from r2
        for reg in reads:
            v = st[reg]
            if v is not None and v[0] == FP:
                plan.escapes = True
                return
