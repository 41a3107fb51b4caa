"""The kernel engine: pybpf programs and maps in the running Linux kernel through bpf(2).

Pure Python (ctypes), no libbpf, no compiler at run time. Same objects and API as the VM:

    from pybpf import kernel
    with kernel.load_program(program) as prog:       # maps created and patched in
        result = prog.test_run(packet)                # BPF_PROG_TEST_RUN
        prog.maps[0][key]                             # dict-like KernelMap

Modules: :mod:`.syscall` (the one bpf(2) door), :mod:`.attrs` (a ctypes structure per
command), :mod:`.uapi` (the kernel's enums), :mod:`.prog`, :mod:`.maps`, :mod:`.btf`, :mod:`.collection`
(whole object files), :mod:`.attach` and :mod:`.link` (hooks), :mod:`.ringbuf` and
:mod:`.perfbuf` (event streams), :mod:`.features` (probes), :mod:`.perf` (perf_event_open),
:mod:`.verify` (the kernel's verdict), :mod:`.r0` (the full 64-bit r0 of a test run).
"""

from __future__ import annotations

import importlib

#: what this package exports, by the submodule that defines it: imported on first use
#: (PEP 562), so ``pybpf trace`` can use the bpf(2) door without loading the whole engine
_EXPORTS = {
    "features": None, "syscall": None, "uapi": None,
    "KernelCollection": "collection", "load_collection": "collection",
    "KernelMap": "maps", "MapInformation": "maps",
    "KernelVerdict": "verify", "verify": "verify",
    "KernelProgram": "prog", "ProgInformation": "prog", "TestRunResult": "prog",
    "load_program": "prog", "test_run": "prog",
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    home = _EXPORTS[name]
    module = importlib.import_module(f"{__name__}.{home or name}")
    value = module if home is None else getattr(module, name)
    globals()[name] = value
    return value


__all__ = ["features", "syscall", "uapi", "KernelMap", "KernelProgram", "TestRunResult",
           "ProgInformation", "MapInformation", "load_program", "test_run", "KernelCollection",
           "load_collection", "verify", "KernelVerdict"]
