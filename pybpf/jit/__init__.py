"""The JIT: eBPF to LLVM IR with llvmlite, to native code for the host CPU.

``JITProgram(program, maps=None, budget=None, checked=True, sandbox=None)`` is a drop-in for
:class:`pybpf.vm.Interpreter` (which it builds first, so the program is verified the same way
unless ``sandbox=True``): ``run(data)`` returns r0 with r1 = the address of a copy of ``data``
and r2 its length; faults raise the interpreter's :class:`pybpf.errors.VMError` /
:class:`pybpf.errors.BudgetExceeded`; ``memory`` and ``maps`` are the live Memory and maps,
shared with Python. ``checked=False`` omits bounds checks and the budget, as the kernel runs a
verified program; it is refused for a sandboxed (unverified) one. ``run_batch(packets)`` runs over many inputs in one
native call; ``emit_llvm()`` / ``emit_asm()`` show the optimised IR and the machine code.

Modules: :mod:`.analysis` (functions, blocks, frame-pointer tracking), :mod:`.codegen` (IR per
opcode family), :mod:`.batch` (native driver loop), :mod:`.engine` (LLVM, caches),
:mod:`.runtime` (context, region table, helper trampoline, faults), :mod:`.hashindex` (native
key index of hash maps, LRU use log), :mod:`.ring` (ring buffer routines), :mod:`.tailcall`
(native tail calls).

Where the JIT knowingly differs from the interpreter (only unverified programs can tell):

* the budget is charged per block but tested at loop heads, calls and exits, so a program over
  budget may run a few forward instructions more and the error names the test's pc;
* a frame whose address never escapes lives in an ``alloca`` zeroed on every call (the
  interpreter keeps one stack per depth for the whole run); escaping frames are the
  interpreter's own stacks, at the same addresses;
* helpers without a native path (map updates and deletes, ``ringbuf_query``, packet helpers,
  ...) cost a Python call each. Native paths: array, per-CPU array and hash-family lookups
  (hash, LRU, per-CPU, LRU per-CPU through :mod:`.hashindex`), the ring buffer's reserve,
  submit, discard and output (:mod:`.ring`), ``bpf_tail_call`` (:mod:`.tailcall`), ktime,
  prandom, ``bpf_loop``;
* a tail-call target runs on its caller's input *region* (the interpreter copies plain
  input data into the target's own region and back), so the target's r1 is the caller's
  address for it;
* LD_ABS / LD_IND bounds checks are shared by a run of loads and dropped where earlier loads
  already proved the length: a miss still ends the program with r0 = 0, but a run that will
  miss stops at its first load (nothing between them can be observed);
* programs over ``LIGHT_THRESHOLD`` instructions compile with a short LLVM pipeline and an
  -O0 (FastISel) engine for the compile-time budget (:mod:`.engine`): slower code than -O2.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .. import isa
from ..errors import UsageError, VMError
from ..program import Program
from ..vm import DEFAULT_BUDGET, Interpreter
from . import engine
from .codegen import CODEGEN_VERSION, MapShape, ModuleGen, Options
from .layout import CTX_FIELDS
from .runtime import Runtime

__all__ = ["JITProgram", "compile_many"]

_CALL = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, *([ctypes.c_uint64] * 7))
_DRIVER = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64,
                           ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64,
                           ctypes.c_uint64)


def _shape(m: Any) -> MapShape:
    spec = getattr(m, "spec", None)
    return MapShape(getattr(m, "type", getattr(spec, "type", "?")),
                    getattr(m, "key_size", 0), getattr(m, "value_size", 0),
                    getattr(m, "max_entries", 0), getattr(m, "stride", 0))


def _map_indexes(vm: Interpreter) -> dict[int, int]:
    """Slot of each 64-bit load of a map pointer -> index of that map."""
    by_handle = {m.handle & isa.U64: i for i, m in enumerate(vm.maps)}
    out = {}
    for pc, insn in enumerate(vm.code):
        if insn is not None and insn.opcode == isa.LDDW and \
                insn.src in (isa.PSEUDO_MAP_IDX, isa.PSEUDO_MAP_FD):
            idx = by_handle.get(vm.lddw_values.get(pc))
            if idx is not None:
                out[pc] = idx
    return out


#: programs longer than this get engine.LIGHT_PASSES instead of the full -O2 pipeline
LIGHT_THRESHOLD = 400


@dataclass
class _Unit:
    """One program's part of a module: its interpreter (memory, maps) and cache key."""

    vm: Interpreter
    shapes: list[MapShape]
    overridden: tuple[int, ...]
    key: str


def _interpreter(program: Program, *, maps=None, budget: int, helpers=None,
                 prog_type: str | None = None, sandbox: bool | None = None) -> Interpreter:
    kwargs: dict[str, Any] = {"prog_type": prog_type} if prog_type is not None else {}
    if sandbox is not None:
        kwargs["sandbox"] = sandbox
    return Interpreter(program, maps=maps, budget=budget, helpers=helpers, **kwargs)


def _unit(vm: Interpreter, checked: bool, opt: int, native_helpers: bool) -> _Unit:
    shapes = [_shape(m) for m in vm.maps]
    overridden = tuple(sorted(vm.helper_overrides))
    key = engine.cache_key(CODEGEN_VERSION, vm.program.bytecode(), shapes, checked, opt,
                           native_helpers,
                           overridden, [(r.index, r.map_name) for r in vm.program.map_refs])
    return _Unit(vm, shapes, overridden, key)


def compile_units(units: list[_Unit], *, checked: bool, opt: int, native_helpers: bool,
                  cache_dir: Any = None) -> engine.Compiled:
    """Machine code for one or more programs in one module (cached by bytecode and options).

    Program k's entry is ``p<k>.f0`` (run by the shared driver ``pybpf.run``, see
    :mod:`.batch`); ``Compiled.meta`` lists each program's table of run-time constants.
    """
    key = units[0].key if len(units) == 1 else engine.cache_key(*(u.key for u in units))

    # -O2's cost grows with the program; past LIGHT_THRESHOLD instructions per program the
    # short pipeline keeps compile time near the budget (explicit opt=3 always gets -O3)
    light = opt == 2 and max(len(u.vm.program.insns) for u in units) > LIGHT_THRESHOLD

    def build() -> tuple[str, Any]:
        parts, consts = [], []
        for k, u in enumerate(units):
            options = Options(checked=checked, native_helpers=native_helpers,
                              overridden=frozenset(u.overridden))
            prefix = f"p{k}."
            gen = ModuleGen(u.vm.code, options=options, shapes=u.shapes,
                            map_index=_map_indexes(u.vm), prefix=prefix)
            module = gen.build(prelude=k == 0)
            parts.append(module.text)
            consts.append(module.consts)
        return "\n".join(parts), consts

    symbols = [f"p{k}.{name}" for k in range(len(units)) for name in ("f0", "pybpf_call")]
    return engine.compile_module(key, build, symbols, opt=opt, light=light, cache_dir=cache_dir)


class JITProgram:
    """A program compiled to native code, with the interpreter's ``run`` contract."""

    def __init__(self, program: Program, *, maps: list[Any] | None = None,
                 budget: int | None = None, checked: bool = True,
                 helpers: dict[int, Callable[..., int]] | None = None, opt: int = 2,
                 native_helpers: bool = True, cache_dir: Any = None,
                 prog_type: str | None = None, sandbox: bool | None = None,
                 _compiled: tuple[engine.Compiled, int] | None = None,
                 _vm: Interpreter | None = None):
        self.program = program
        self.checked = checked
        # kept for the programs bpf_tail_call jumps to (pybpf.jit.tailcall), which inherit them
        self.opt, self.native_helpers, self.cache_dir = opt, native_helpers, cache_dir
        self.sandbox_request = sandbox
        self.budget = DEFAULT_BUDGET if budget is None else budget
        self.vm = _vm if _vm is not None else _interpreter(
            program, maps=maps, budget=self.budget, helpers=helpers, prog_type=prog_type,
            sandbox=sandbox)
        if not checked and self.vm.sandbox:
            raise UsageError("native code without run-time checks needs a verified program: "
                             "use checked=True for a sandboxed (unverified) run")
        self.memory = self.vm.memory
        self.maps = self.vm.maps
        start = time.perf_counter()
        if _compiled is None:
            unit = _unit(self.vm, checked, opt, native_helpers)
            _compiled = (compile_units([unit], checked=checked, opt=opt,
                                       native_helpers=native_helpers, cache_dir=cache_dir), 0)
        self.compiled, index = _compiled
        self.compile_seconds = time.perf_counter() - start
        self.runtime = Runtime(self.vm, self.compiled.meta[index])
        self._run_native = _DRIVER(self.compiled.addresses["pybpf.run"])
        self._entry = self.compiled.addresses[f"p{index}.f0"]
        self.runtime.words[CTX_FIELDS["entry"]] = self._entry   # where tail calls jump in
        self.runtime.install(_CALL(self.compiled.addresses[f"p{index}.pybpf_call"]), self)
        self._desc = (ctypes.c_uint64 * 4)()
        self._result = (ctypes.c_uint64 * 1)()
        self._batch_keep: Any = None
        self.last_ns: float | None = None
        self.last_retval: int | None = None

    # --- running -----------------------------------------------------------------------------
    @property
    def _native_budget(self) -> int:
        return self.budget if self.checked else (1 << 62)

    def _call_repeat(self, data: bytes, repeat: int, ctx: bytes | None = None) -> int:
        rt = self.runtime
        r1, r2 = rt.prepare(data, ctx)
        rt.clear()
        w = rt.words
        self._desc[:] = [r1, r2, w[CTX_FIELDS["data_lo"]], w[CTX_FIELDS["data_len"]]]
        tails = rt.tails
        if tails is not None:
            tails.begin_run()
        try:
            done = self._run_native(rt.address, self._entry, repeat,
                                    ctypes.addressof(self._desc), 0,
                                    ctypes.addressof(self._result), 0, self._native_budget)
            if done != repeat:
                self._raise_fault()
        finally:
            if tails is not None:
                tails.end_run()
        return self._result[0]

    def _raise_fault(self) -> None:
        """Raise what stopped native code, naming the source line as the interpreter does."""
        try:
            self.runtime.raise_fault(self.budget)
        except VMError as exc:
            source_line = getattr(self.vm, "source_line", None)
            line = source_line(exc.pc) if source_line is not None else None
            if line is None or exc.source is not None:
                raise
            raise type(exc)(exc.message, pc=exc.pc, address=exc.address,
                            source=line) from None

    def run(self, data: bytes = b"", *, repeat: int | None = None,
            ctx: bytes | None = None) -> Any:
        """Run once on a copy of ``data``; returns r0 (unsigned 64-bit).

        With a program type (``prog_type=``), r1 is the type's context built around ``data``
        (and ``ctx``), as the interpreter builds it. With ``repeat=N`` the program runs N
        times inside one native call and the mean nanoseconds per run is returned instead
        (r0 is kept in ``last_retval``).
        """
        if repeat is None:
            self.last_retval = self._call_repeat(data, 1, ctx)
            return self.last_retval
        r0, ns = self.time_runs(data, repeat, ctx=ctx)
        return ns

    def time_runs(self, data: bytes = b"", repeat: int = 1, *,
                  ctx: bytes | None = None) -> tuple[int, float]:
        """Run ``repeat`` times in one native call; (r0 of the last run, mean ns per run of
        this thread's CPU time)."""
        repeat = max(int(repeat), 1)
        if self.vm.prog_type is None:
            self.vm.admit_input(len(data))    # verify outside the timed region
        # the thread's CPU time, like the kernel's test_run timer, which stops while the
        # task is scheduled out (on a busy machine wall time measures the neighbours)
        start = time.thread_time_ns()
        r0 = self._call_repeat(data, repeat, ctx)
        elapsed = time.thread_time_ns() - start
        self.last_retval = r0
        self.last_ns = elapsed / repeat
        return r0, self.last_ns

    def data_out(self) -> bytes:
        """The packet as the last run left it (what BPF_PROG_TEST_RUN hands back)."""
        return self.vm.data_out()

    def ctx_out(self) -> bytes | None:
        """The context as the last run left it (program types only)."""
        return self.vm.ctx_out()

    def run_batch(self, packets: Sequence[bytes], *, repeat: int = 1) -> list[int]:
        """Run once on each input, in one native call; r0 of each run.

        Each run sees its own input as the data region (r1, r2, LD_ABS), exactly as ``run``
        would; a fault raises the error ``run`` would raise for that input. With ``repeat``
        the whole batch runs that many times (packets keep what earlier rounds wrote) and
        ``last_ns`` is the mean CPU nanoseconds per packet.
        """
        packets = [bytes(p) for p in packets]
        n = len(packets)
        if n == 0:
            return []
        total = sum(len(p) for p in packets)
        buf = ctypes.create_string_buffer(max(total, 1))
        base = ctypes.addressof(buf)
        if getattr(self.vm, "prog_type", None) is not None:
            return self._run_batch_with_contexts(packets, repeat)
        for size in {len(p) for p in packets}:
            self.vm.admit_input(size)
        descs = (ctypes.c_uint64 * (4 * n))()
        off = 0
        for i, p in enumerate(packets):
            ctypes.memmove(base + off, p, len(p))
            descs[4 * i: 4 * i + 4] = [base + off, len(p), base + off, len(p)]
            off += len(p)
        results = (ctypes.c_uint64 * n)()
        rt = self.runtime
        rt.adopt_data(base, len(packets[0]), None)
        rt.sync_regions()
        self._batch_keep = buf
        rounds = max(int(repeat), 1)
        tails = rt.tails
        if tails is not None:
            tails.begin_run()
        start = time.thread_time_ns()
        try:
            for _ in range(rounds):
                rt.clear()
                done = self._run_native(rt.address, self._entry, n, ctypes.addressof(descs),
                                        4, ctypes.addressof(results), 1, self._native_budget)
                if done != n:
                    self._raise_fault()
        finally:
            if tails is not None:
                tails.end_run()
        self.last_ns = (time.thread_time_ns() - start) / (rounds * n)
        return list(results)

    def _run_batch_with_contexts(self, packets: list[bytes], repeat: int) -> list[int]:
        """A program type builds a context per packet (in Python, as the interpreter does);
        each run is then one native call."""
        results = []
        start = time.thread_time_ns()
        for _ in range(max(int(repeat), 1)):
            results = [self._call_repeat(p, 1) for p in packets]
        self.last_ns = (time.thread_time_ns() - start) / (max(int(repeat), 1) * len(packets))
        return results

    # --- inspection --------------------------------------------------------------------------
    def emit_llvm(self, optimised: bool = True) -> str:
        """The LLVM IR of the program: as LLVM optimised it (default) or as pybpf generated
        it. Functions are named ``p0.f<slot>`` per subprogram, the driver ``p0.pybpf_run``.
        (When several programs share a module, it holds all of them.)"""
        return self.compiled.optimised_ir() if optimised else self.compiled.source_ir

    def emit_asm(self) -> str:
        """Host assembly of the compiled program."""
        return engine.emit_asm(self.compiled, self.compiled.opt)

    @property
    def trace_pipe(self) -> list[str]:
        return self.vm.trace_pipe

    def close(self) -> None:
        self.runtime.close()


def compile_many(programs: Sequence[Program], *, checked: bool = True, opt: int = 2,
                 native_helpers: bool = True, budget: int | None = None,
                 helpers: dict[int, Callable[..., int]] | None = None,
                 cache_dir: Any = None, sandbox: bool | None = None) -> list[JITProgram]:
    """Compile several programs as one LLVM module (one pass of the optimiser and code
    generator instead of one per program; used by tests and fuzzing). Programs the
    interpreter refuses to load raise as ``JITProgram`` would."""
    vms = [_interpreter(p, budget=DEFAULT_BUDGET if budget is None else budget, helpers=helpers,
                        sandbox=sandbox)
           for p in programs]
    units = [_unit(vm, checked, opt, native_helpers) for vm in vms]
    compiled = compile_units(units, checked=checked, opt=opt, native_helpers=native_helpers,
                             cache_dir=cache_dir)
    return [JITProgram(p, budget=budget, checked=checked, helpers=helpers, opt=opt,
                       sandbox=sandbox, _compiled=(compiled, k), _vm=vm)
            for k, (p, vm) in enumerate(zip(programs, vms))]


def check_engine_available() -> None:
    """Raise VMError when LLVM cannot generate code on this host."""
    try:
        engine.target_machine()
    except Exception as exc:  # pragma: no cover - depends on the llvmlite build
        raise VMError(f"the JIT is unavailable: {exc}") from None
