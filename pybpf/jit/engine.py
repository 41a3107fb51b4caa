"""LLVM set-up for the JIT: target machine, optimisation pipeline, MCJIT, compilation cache.

One process-wide target machine for the host CPU (``-mcpu=native`` in clang's words, so LLVM
may use every instruction the machine has, as the kernel's JIT does for its own host). Each
compiled program gets its own MCJIT execution engine so its machine code is freed with it.

Compilation is cached twice, keyed by what determines the machine code -- the program's
bytecode, the map *shapes* it names, the codegen options, and the LLVM / CPU identity:

* in memory, so a second :class:`pybpf.jit.JITProgram` of the same program costs nothing;
* optionally on disk (``PYBPF_JIT_CACHE=/some/dir`` or ``cache_dir=``) through MCJIT's object
  cache, so a new process skips LLVM's optimiser and code generator.

The pipeline is LLVM's standard ``-O2`` (``-O3`` on request) from the new pass manager. Large
programs (``pybpf.jit.LIGHT_THRESHOLD``) get :data:`LIGHT_PASSES` and an engine generating code
at :data:`LIGHT_CODEGEN` instead, for the 50 ms budget per 1,000 instructions (measured by
``benchmarks/jit.py``; tests assert no timings).
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import llvmlite
import llvmlite.binding as llvm

_lock = threading.Lock()


@functools.cache
def _initialise() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_native_asmparser()


@functools.cache
def target_machine(opt: int = 2) -> llvm.TargetMachine:
    """The host's target machine for optimising and printing (never handed to an engine)."""
    return new_target_machine(opt)


def new_target_machine(opt: int = 2) -> llvm.TargetMachine:
    """A fresh host target machine (host CPU name and features); an MCJIT engine takes
    ownership of the one it is created with, so every engine gets its own."""
    _initialise()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                        features=llvm.get_host_cpu_features().flatten(),
                                        opt=opt, reloc="default", codemodel="jitdefault",
                                        jit=True)


def host_identity() -> str:
    """What besides the program decides the machine code (part of every cache key)."""
    _initialise()
    return "|".join((llvmlite.__version__, ".".join(map(str, llvm.llvm_version_info)),
                     llvm.get_process_triple(), llvm.get_host_cpu_name(),
                     llvm.get_host_cpu_features().flatten()))


#: the short pipeline for large programs: registers and stack slots to SSA values and CFG
#: clean-up (which also turns short forward branches into selects). Measured on the two
#: 1,000-instruction programs of ``benchmarks/jit.py``: -O2 costs 20-40 ms there and
#: ``instruction_combine`` another 10-25 ms, most of the 50 ms budget.
LIGHT_PASSES = ("sroa", "simplify_cfg")

#: code-generation level of the engine for large programs. At -O0 LLVM selects instructions
#: with FastISel and allocates registers locally: 4-8x cheaper than -O2's SelectionDAG and
#: greedy allocator, whose cost is most of a big program's compile time. The code is slower
#: than -O2's (values live across blocks go through the stack) but still beats the kernel's
#: JIT on the branchy 1,000-instruction packet parser of the benchmark (its packet loads are
#: calls in the kernel, inline loads here).
LIGHT_CODEGEN = 0


def optimise(module: llvm.ModuleRef, opt: int, *, light: bool = False) -> None:
    """Run LLVM's standard pipeline at ``opt`` (0 leaves the module as generated), or
    :data:`LIGHT_PASSES` when ``light``."""
    if opt <= 0:
        return
    tm = target_machine(opt)
    pto = llvm.create_pipeline_tuning_options(speed_level=opt)
    pto.loop_vectorization = opt >= 3
    pto.slp_vectorization = opt >= 3
    pb = llvm.create_pass_builder(tm, pto)
    if light:
        pm = llvm.create_new_module_pass_manager()
        for name in LIGHT_PASSES:
            getattr(pm, f"add_{name}_pass")()
    else:
        pm = pb.getModulePassManager()
    pm.run(module, pb)


@dataclass
class Compiled:
    """Machine code for one module: the engine keeping it alive and its entry points."""

    engine: Any
    addresses: dict[str, int]
    ir: str | None          # optimised IR text (None until asked for)
    asm: str | None = None  # filled lazily by emit_asm
    module_ref: Any = field(default=None, repr=False)
    source_ir: str = field(default="", repr=False)
    opt: int = 2
    meta: Any = None        # what the code generator said about the module (constants table)
    light: bool = False     # compiled with LIGHT_PASSES instead of -O<opt>
    optimised_here: bool = True   # False: the machine code came from the disk cache

    def optimised_ir(self) -> str:
        if self.ir is None:
            mod = llvm.parse_assembly(self.source_ir)
            optimise(mod, self.opt, light=self.light)
            self.ir = str(mod)
        return self.ir


_memory_cache: dict[str, Compiled] = {}


def cache_key(*parts: Any) -> str:
    h = hashlib.sha256(host_identity().encode())
    for part in parts:
        h.update(repr(part).encode() if not isinstance(part, bytes) else part)
        h.update(b"\0")
    return h.hexdigest()


def _disk_cache_dir(cache_dir: str | os.PathLike | None) -> Path | None:
    if cache_dir is None:
        cache_dir = os.environ.get("PYBPF_JIT_CACHE")
    if not cache_dir:
        return None
    path = Path(cache_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


class _SharedEngine:
    """One MCJIT engine per optimisation level, shared by every compiled module.

    Creating an engine costs several milliseconds (its own target machine and code-generation
    pipeline); adding a module to a live engine costs a fraction of that, which matters for
    the compile-time budget. Exported symbols are renamed per module to stay unique, and the
    optional object cache finds a module's file by the module's name (its cache key).
    """

    def __init__(self, opt: int):
        from .batch import driver_ir
        from .codegen import RUNTIME_IR

        runtime = llvm.parse_assembly(RUNTIME_IR + driver_ir())
        runtime.name = "pybpf.runtime"
        optimise(runtime, opt)
        self.engine = llvm.create_mcjit_compiler(runtime, new_target_machine(opt))
        self.paths: dict[str, Path] = {}
        self.engine.set_object_cache(self._notify, self._getbuffer)
        self.engine.finalize_object()
        #: the shared driver loop (batch.driver_ir)
        self.run_address = self.engine.get_function_address("pybpf.run")

    def _notify(self, module, buffer: bytes) -> None:
        path = self.paths.get(module.name)
        if path is not None:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(buffer)
            os.replace(tmp, path)

    def _getbuffer(self, module) -> bytes | None:
        path = self.paths.get(module.name)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError:
            return None


#: shared engines by (opt, light): light programs get an engine generating at LIGHT_CODEGEN
_engines: dict[tuple[int, bool], _SharedEngine] = {}


def compile_module(key: str, build: Callable[[], tuple[str, Any]], symbols: list[str], *,
                   opt: int = 2, light: bool = False,
                   cache_dir: str | os.PathLike | None = None) -> Compiled:
    """Compile the module ``build()`` returns as ``(ir_text, meta)``; return the addresses of
    ``symbols``. ``build`` runs only on an in-memory cache miss, and LLVM's optimiser only
    when the disk cache has no object for ``key`` either.
    """
    with _lock:
        hit = _memory_cache.get(key)
        if hit is not None:
            return hit
        _initialise()
        ir_text, meta = build()
        mod = llvm.parse_assembly(ir_text)
        mod.name = key
        for name in symbols:
            mod.get_function(name).name = f"{name}.{key[:24]}"
        disk = _disk_cache_dir(cache_dir)
        obj_path = disk / f"{key}.o" if disk is not None else None
        optimised = not (obj_path is not None and obj_path.exists())
        if optimised:   # a cached object makes LLVM's optimiser and code generator unnecessary
            optimise(mod, opt, light=light)
        shared = _engines.get((opt, light))
        if shared is None:
            shared = _engines[(opt, light)] = _SharedEngine(LIGHT_CODEGEN if light else opt)
        if obj_path is not None:
            shared.paths[key] = obj_path
        shared.engine.add_module(mod)
        shared.engine.finalize_object()
        addresses = {name: shared.engine.get_function_address(f"{name}.{key[:24]}")
                     for name in symbols}
        addresses["pybpf.run"] = shared.run_address
        # the optimised IR's text is made only when asked for (printing a big module costs
        # several milliseconds of the compile budget)
        compiled = Compiled(shared.engine, addresses, None, module_ref=mod, source_ir=ir_text,
                            opt=opt, meta=meta, light=light, optimised_here=optimised)
        _memory_cache[key] = compiled
        return compiled


def emit_asm(compiled: Compiled, opt: int = 2) -> str:
    """Host assembly of the optimised module (what the engine runs)."""
    if compiled.asm is None:
        mod = llvm.parse_assembly(compiled.optimised_ir())
        level = LIGHT_CODEGEN if compiled.light else opt
        compiled.asm = target_machine(level).emit_assembly(mod)
    return compiled.asm


def clear_cache() -> None:
    """Forget every compiled module (programs already built keep their own reference)."""
    with _lock:
        _memory_cache.clear()
