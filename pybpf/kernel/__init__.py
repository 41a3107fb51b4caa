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

from . import features, syscall, uapi  # noqa: F401
from .collection import KernelCollection, load_collection  # noqa: F401
from .maps import KernelMap, MapInformation  # noqa: F401
from .verify import KernelVerdict, verify  # noqa: F401
from .prog import (KernelProgram, ProgInformation, TestRunResult, load_program,  # noqa: F401
                   test_run)

__all__ = ["features", "syscall", "uapi", "KernelMap", "KernelProgram", "TestRunResult",
           "ProgInformation", "MapInformation", "load_program", "test_run", "KernelCollection",
           "load_collection", "verify", "KernelVerdict"]
