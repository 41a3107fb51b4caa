"""``pybpf trace``: bpftrace's language compiled to eBPF through LLVM's BPF backend.

Pipeline: :mod:`.parser` (script -> :mod:`.ast`) -> :mod:`.codegen` (AST -> LLVM IR with
llvmlite -> a BPF ELF object) -> :mod:`.runtime` (pybpf's kernel engine loads the programs and
maps, perf events attach them, a ring buffer carries printf/exit events, :mod:`.output` prints
maps exactly as bpftrace 0.17 does).
"""

from .parser import TraceSyntaxError, parse  # noqa: F401
from .runtime import compile_script, run  # noqa: F401
