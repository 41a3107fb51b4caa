"""``bpf_tail_call`` in native code: targets compiled too, the jump made without Python.

The interpreter runs a tail-call target in an interpreter of its own (its own stacks and
text, the caller's maps shared by name, the caller's context and packet), counts the chain
(at most ``MAX_TAIL_CALL_CNT`` = 33 tail calls) and, when the call succeeds, ends the calling
function with the target's r0 (:meth:`pybpf.vm.Interpreter.tail_call`). The JIT keeps that
model with native parts:

* each target is a :class:`pybpf.jit.JITProgram` of its own (its runtime context, stacks,
  constants; same options, budget and ``sandbox`` as the caller), made the first time the
  caller jumps to it -- a target that tail-calls makes its own targets the same way, so a
  program that tail-calls itself is a chain of instances, as in the interpreter;
* per prog_array the caller has a native *table* of two words per slot, kept inside the
  caller's context words when small (:func:`table_offsets`: the code finds it at a constant
  offset from ``ctx``, one load, as the kernel's JIT loads the array's slot). First half, per
  slot: 0 not known yet, 1 empty, 2 occupied but first reached with the chain full (no
  target made yet), otherwise the target's context address (whose ``entry`` word is its
  native code). Second half: the caller's own context address when the slot holds the
  caller's own program, run exactly as the caller runs it (:meth:`TailCalls.is_self`);
* from a program's entry function at depth 0 the jump is inline
  (:func:`pybpf.jit.codegen._entry_tail_jump`): to itself, it counts the chain and restarts
  the function on its own context (a direct ``musttail`` jump -- a program that tail-calls
  itself needs no second instance then, nor any hand-over); to a known target, it counts the
  chain, hands the run's state (:data:`HANDED`, the chain count, the input window) to the
  target's context and jumps (``musttail``) into the target's entry, recording the target as
  ``jumped`` and ``Fault.TAILJUMP`` in the chain's *root* context (the one the driver or
  ``pybpf.tail_enter`` called, handed on as ``root``), so ``pybpf.tail_settle`` finds the
  last context in one step, however long the chain;
* anything else goes to the routines of :data:`TAIL_IR` (in the shared runtime module).
  ``pybpf.tail_prepare`` checks the slot and the table (``MODE_TAIL`` through the trampoline
  for a slot not known yet, :meth:`TailCalls.resolve`) and the chain count, then hands the
  run's state to the target's context; the entry function then jumps as above. Deeper down
  (a tail call in a subprogram) ``pybpf.tail_enter`` calls the target as the root of its own
  chain and the calling function returns its r0. A target that ends the whole program
  (LD_ABS miss) gives its r0 as the interpreter's ``run_in_chain`` does; a target that
  faults leaves ``Fault.TAILFAULT`` and its context in ``fault_addr``, and the caller raises
  that target's error.

Tables hold what the prog_array held when the run started: :meth:`TailCalls.begin_run` (called
before every native run) forgets a table whose prog_array changed since (both halves), and
lends every known target the caller's input -- the context attached to the target's memory
as the interpreter attaches it, or the caller's data region -- until
:meth:`TailCalls.end_run`; both walk a flat list of the callers reachable from the run's
program (:meth:`TailCalls.chain`), rebuilt only when some caller made a new target.
"""

from __future__ import annotations

import ctypes
import operator
import weakref
from typing import Any

from ..errors import HelperError
from ..helpers.maps import E2BIG, MAX_TAIL_CALL_CNT
from .layout import CTX_FIELDS, CTX_WORDS, MODE_TAIL, Fault

C = CTX_FIELDS
ENOENT = 2
#: table words that are no target context
UNKNOWN, EMPTY, FULL = 0, 1, 2

#: words a target's context takes from its caller's before the jump
HANDED = ("data_lo", "data_len", "rng", "batch_index", "cpu", "run_r1", "run_r2",
          "budget_full")


def _copy(src: str, dst: str, name: str, n: str) -> str:
    return (f"  %{name}.s{n} = getelementptr i64, ptr {src}, i64 {C[name]}\n"
            f"  %{name}.v{n} = load i64, ptr %{name}.s{n}, align 8\n"
            f"  %{name}.d{n} = getelementptr i64, ptr {dst}, i64 {C[name]}\n"
            f"  store i64 %{name}.v{n}, ptr %{name}.d{n}, align 8")


def _word(ptr: str, name: str, stem: str) -> str:
    return f"  %{stem} = getelementptr i64, ptr {ptr}, i64 {C[name]}"


TAIL_IR = f"""
define i64 @pybpf.tail_prepare(ptr %ctx, ptr %table, i64 %n, i64 %index, i64 %map,
                               i64 %pc) nounwind {{
entry:
  %idx = and i64 %index, 4294967295
  %in = icmp ult i64 %idx, %n
  br i1 %in, label %look, label %noent
look:
  %slot = getelementptr i64, ptr %table, i64 %idx
  %d0 = load i64, ptr %slot, align 8
  %empty0 = icmp eq i64 %d0, {EMPTY}
  br i1 %empty0, label %noent, label %count
count:
{_word("%ctx", "tail_cnt", "cp")}
  %cnt = load i64, ptr %cp, align 8
  %full = icmp uge i64 %cnt, {MAX_TAIL_CALL_CNT}
  %target0 = icmp ugt i64 %d0, {FULL}
  br i1 %target0, label %known, label %unknown
known:
  br i1 %full, label %e2big, label %go
unknown:
  %was.full = icmp eq i64 %d0, {FULL}
  %still.full = and i1 %was.full, %full
  br i1 %still.full, label %e2big, label %resolve
resolve:
{_word("%ctx", "helper", "hp")}
  %h = load ptr, ptr %hp, align 8
  %d1 = call i64 %h(ptr %ctx, i64 {MODE_TAIL}, i64 %map, i64 %pc, i64 %idx, i64 0, i64 0,
                    i64 0, i64 0)
{_word("%ctx", "status", "stp")}
  %st = load i64, ptr %stp, align 8
  %failed = icmp ne i64 %st, 0
  br i1 %failed, label %abort, label %resolved
abort:
  ret i64 0
resolved:
  %empty1 = icmp eq i64 %d1, {EMPTY}
  br i1 %empty1, label %noent, label %made
made:
  %full1 = icmp eq i64 %d1, {FULL}
  br i1 %full1, label %e2big, label %go
go:
  %d = phi i64 [ %d0, %known ], [ %d1, %made ]
  %t = inttoptr i64 %d to ptr
  %cnt1 = add i64 %cnt, 1
{_word("%t", "tail_cnt", "tcp")}
  store i64 %cnt1, ptr %tcp, align 8
{chr(10).join(_copy("%ctx", "%t", name, "a") for name in HANDED)}
{_word("%t", "budget", "tbp")}
  store i64 %budget_full.va, ptr %tbp, align 8
{_word("%t", "status", "tsp")}
  store i64 0, ptr %tsp, align 8
{_word("%t", "regions", "trp")}
  %tr.i = load i64, ptr %trp, align 8
  %tr = inttoptr i64 %tr.i to ptr
  store i64 %data_lo.va, ptr %tr, align 8
  %tr.len = getelementptr i64, ptr %tr, i64 1
  store i64 %data_len.va, ptr %tr.len, align 8
  ret i64 %d
noent:
  ret i64 {-ENOENT}
e2big:
  ret i64 {-E2BIG}
}}

define i64 @pybpf.tail_settle(ptr %ctx, i64 %raw) nounwind {{
entry:
{_word("%ctx", "status", "sp")}
  %st0 = load i64, ptr %sp, align 8
  %jumped0 = icmp eq i64 %st0, {int(Fault.TAILJUMP)}
  br i1 %jumped0, label %last, label %done
last:
{_word("%ctx", "jumped", "cjp")}
  %c.i = load i64, ptr %cjp, align 8
  %c = inttoptr i64 %c.i to ptr
{_word("%c", "status", "csp")}
  %cst = load i64, ptr %csp, align 8
{_copy("%c", "%ctx", "rng", "c")}
{_copy("%c", "%ctx", "tail_cnt", "c")}
  %ok = icmp eq i64 %cst, 0
  %ended = icmp eq i64 %cst, {int(Fault.EXIT)}
  %fine = or i1 %ok, %ended
  br i1 %fine, label %clean, label %fault
clean:
  store i64 0, ptr %csp, align 8
{_copy("%c", "%ctx", "exit_value", "c")}
  store i64 %cst, ptr %sp, align 8
  br label %done
fault:
  store i64 {int(Fault.TAILFAULT)}, ptr %sp, align 8
{_word("%ctx", "fault_addr", "fap")}
  store i64 %c.i, ptr %fap, align 8
  br label %done
done:
  ret i64 %raw
}}

define i64 @pybpf.tail_enter(ptr %ctx, ptr %t, i64 %pc) nounwind {{
entry:
{_word("%t", "root", "trp")}
  %t.i = ptrtoint ptr %t to i64
  store i64 %t.i, ptr %trp, align 8
{_word("%t", "entry", "tep")}
  %entry.fn = load ptr, ptr %tep, align 8
{_word("%t", "run_r1", "r1p")}
  %r1 = load i64, ptr %r1p, align 8
{_word("%t", "run_r2", "r2p")}
  %r2 = load i64, ptr %r2p, align 8
  %raw = call i64 %entry.fn(ptr %t, i64 %r1, i64 %r2, i64 0, i64 0, i64 0, i64 0)
  %r0 = call i64 @pybpf.tail_settle(ptr %t, i64 %raw)
{_copy("%t", "%ctx", "rng", "b")}
{_copy("%t", "%ctx", "tail_cnt", "b")}
{_word("%t", "status", "tsp")}
  %tst = load i64, ptr %tsp, align 8
  %ended = icmp eq i64 %tst, {int(Fault.EXIT)}
{_word("%t", "exit_value", "tex")}
  %exv = load i64, ptr %tex, align 8
  %res = select i1 %ended, i64 %exv, i64 %r0
  %ok = icmp eq i64 %tst, 0
  %fine = or i1 %ok, %ended
  br i1 %fine, label %replaced, label %fault
replaced:
  store i64 0, ptr %tsp, align 8
{_word("%ctx", "status", "sp")}
  store i64 {int(Fault.TAILRET)}, ptr %sp, align 8
{_word("%ctx", "exit_value", "ep")}
  store i64 %res, ptr %ep, align 8
  ret i64 %res
fault:
{_word("%ctx", "status", "fsp")}
  store i64 {int(Fault.TAILFAULT)}, ptr %fsp, align 8
{_word("%ctx", "fault_addr", "fap")}
  store i64 %t.i, ptr %fap, align 8
{_word("%ctx", "fault_pc", "fpp")}
  store i64 %pc, ptr %fpp, align 8
  ret i64 0
}}
"""

TAIL_DECLARATION = """
declare i64 @pybpf.tail_prepare(ptr, ptr, i64, i64, i64, i64) nounwind
declare i64 @pybpf.tail_enter(ptr, ptr, i64) nounwind
"""


#: words of tail-call tables a context may hold after its own words (beyond: a separate table)
INLINE_TABLE_WORDS = 1024


def table_offsets(shapes: list) -> dict[int, int]:
    """Word offset, from the context's start, of the table of each prog_array (by map index)
    kept inside the context -- so the code finds a target with one load from ``ctx``, no
    chain through the constants table (each hop of a tail-call chain waits for those loads,
    as the kernel's JIT waits for only the array's slot). ``shapes`` are the maps'
    :class:`.codegen.MapShape`, the same for the code generator and the runtime."""
    offsets, used = {}, 0
    for i, shape in enumerate(shapes):
        if shape.type != "prog_array":
            continue
        size = 2 * max(shape.max_entries, 1)
        if used + size <= INLINE_TABLE_WORDS:
            offsets[i] = CTX_WORDS + used
            used += size
    return offsets


def table_words(shapes: list) -> int:
    """Words the context needs for :func:`table_offsets`' tables."""
    offsets = table_offsets(shapes)
    return sum(2 * max(shapes[i].max_entries, 1) for i in offsets)


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(map(operator.is_, a, b))


#: bumped whenever a caller makes a target or a table (cached chains of callers are stale)
_GRAPH = [0]


class TailCalls:
    """The tail-call tables and targets of one JIT runtime (see the module docstring)."""

    def __init__(self, runtime: Any):
        self.runtime = weakref.ref(runtime)
        #: map index -> (native table, prog_array entries the table was filled from)
        self.tables: dict[int, tuple[Any, list]] = {}
        #: id(target program) -> (program, its JITProgram)
        self.targets: dict[int, tuple[Any, Any]] = {}
        self._flat: list[TailCalls] | None = None
        #: the last full begin_run: (_GRAPH, data region, [(prog_array, entries then)])
        self._quiet: tuple[int, Any, list] | None = None
        self._flat_version = -1

    def table_address(self, index: int) -> int:
        rt = self.runtime()
        m = rt.vm.maps[index]
        # one word per slot for the general path, then one per slot for the self jump
        kind = ctypes.c_uint64 * (2 * max(m.max_entries, 1))
        offset = table_offsets(rt.shapes).get(index)
        table = kind() if offset is None else kind.from_address(rt.address + 8 * offset)
        self.tables[index] = (table, list(m.entries))
        _GRAPH[0] += 1
        return ctypes.addressof(table)

    # --- per run ---------------------------------------------------------------------------------
    def chain(self) -> list["TailCalls"]:
        """This caller and every caller reachable through its targets, each once, callers
        before their targets -- kept until some caller makes a new target (``_GRAPH``), so a
        run of a long chain of instances does not walk it recursively each time."""
        if self._flat is None or self._flat_version != _GRAPH[0]:
            flat: list[TailCalls] = []
            seen: set[int] = set()

            def visit(tails: "TailCalls") -> None:
                if id(tails) in seen:
                    return
                seen.add(id(tails))
                flat.append(tails)
                for _, jit in tails.targets.values():
                    if jit.runtime.tails is not None:
                        visit(jit.runtime.tails)

            visit(self)
            self._flat, self._flat_version = flat, _GRAPH[0]
        return self._flat

    def begin_run(self) -> None:
        """Forget tables whose prog_array changed; lend every known target this run's input
        (callers before their targets: a target lends what its caller borrowed).

        A repeated run with nothing changed -- no caller made a target or a table, the
        prog_arrays hold what they held at the last full pass and the run's program has the
        same data region and no context -- has nothing to do (``_quiet``)."""
        root = self.runtime()
        quiet = self._quiet
        if quiet is not None and root is not None and root.vm.context is None \
                and quiet[0] == _GRAPH[0] and quiet[1] is root.vm.data_region \
                and root.vm.data_region is not None \
                and all(_same(m.entries, snap) for m, snap in quiet[2]):
            return
        arrays: dict[int, Any] = {}
        for tails in self.chain():
            rt = tails.runtime()
            if rt is None:
                continue
            for index, (table, snapshot) in tails.tables.items():
                m = rt.vm.maps[index]
                arrays[id(m)] = m
                if not _same(m.entries, snapshot):
                    ctypes.memset(ctypes.addressof(table), 0, ctypes.sizeof(table))
                    tails.tables[index] = (table, list(m.entries))
            vm = rt.vm
            for _, jit in tails.targets.values():
                target = jit.runtime
                if vm.context is None and target.vm.data_region is vm.data_region \
                        and vm.data_region is not None:
                    continue        # lent already (the common case of a repeated run)
                target.borrow_input(rt)
        self._quiet = None if root is None else (
            _GRAPH[0], root.vm.data_region, [(m, list(m.entries)) for m in arrays.values()])

    def end_run(self) -> None:
        root = self.runtime()
        if root is not None and root.vm.context is None and self._quiet is not None \
                and self._quiet[0] == _GRAPH[0]:
            return      # no target was lent a context (they get one only from a caller's)
        for tails in self.chain():
            rt = tails.runtime()
            for _, jit in tails.targets.values():
                if jit.runtime.vm.context is not None:
                    jit.runtime.return_input(rt)

    # --- MODE_TAIL -------------------------------------------------------------------------------
    def resolve(self, index: int, slot: int) -> int:
        """The table word for ``slot`` of prog_array ``index`` (and fill the table)."""
        rt = self.runtime()
        table, _ = self.tables[index]
        target = rt.vm.maps[index].program_at(slot)
        if target is None:
            table[slot] = EMPTY
            return EMPTY
        if rt.words[C["tail_cnt"]] >= MAX_TAIL_CALL_CNT:
            table[slot] = FULL  # the jump fails anyway: no target made until a shorter chain
            return FULL
        jit = self.target(target)
        jit.runtime.borrow_input(rt)
        if jit.runtime.tails is not None:
            jit.runtime.tails.begin_run()
        table[slot] = jit.runtime.address
        if self.is_self(target, jit):
            table[len(table) // 2 + slot] = rt.address
        return jit.runtime.address

    def is_self(self, target: Any, jit: Any) -> bool:
        """Whether ``target`` is the caller's own program, run exactly as the caller runs it
        (the same maps, helpers, program type and options): then a jump from the caller's
        entry function may restart the caller on its own context -- what a separate target
        instance would do, on the same input, maps and chain count (the stack is zeroed or
        unread as on any entry), without handing anything over."""
        owner = self.runtime()._program()
        return (owner is not None and owner.program is target
                and len(jit.maps) == len(owner.maps)
                and all(a is b for a, b in zip(jit.maps, owner.maps))
                and jit.vm.helper_overrides == owner.vm.helper_overrides
                and jit.vm.prog_type is owner.vm.prog_type
                and jit.compiled is owner.compiled)

    def target(self, target: Any) -> Any:
        """The JITProgram running ``target`` for this caller (made once, like the
        interpreter's tail runners: the caller's maps shared by name, its options)."""
        found = self.targets.get(id(target))
        if found is not None and found[0] is target:
            return found[1]
        if not hasattr(target, "insns") or not hasattr(target, "maps"):
            raise HelperError(f"bpf_tail_call: the prog_array entry {target!r} is not a program")
        from ..maps import create_map
        from . import JITProgram

        rt = self.runtime()
        owner = rt._program()
        vm = rt.vm
        shared = {spec.name: live for spec, live in zip(vm.program.maps, vm.maps)}
        maps = [shared.get(spec.name) or create_map(spec) for spec in target.maps]
        ptype = vm.prog_type.name if vm.prog_type is not None else None
        jit = JITProgram(target, maps=maps, budget=owner.budget, checked=owner.checked,
                         helpers=dict(vm.helper_overrides) or None, opt=owner.opt,
                         native_helpers=owner.native_helpers, cache_dir=owner.cache_dir,
                         prog_type=ptype, sandbox=owner.sandbox_request)
        self.targets[id(target)] = (target, jit)
        _GRAPH[0] += 1
        return jit
