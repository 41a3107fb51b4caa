"""``pybpf trace``: bpftrace's language compiled to eBPF through LLVM's BPF backend.

Pipeline: :mod:`.parser` (script -> :mod:`.ast`) -> :mod:`.codegen` (AST -> LLVM IR with
llvmlite -> a BPF ELF object) -> :mod:`.build` (the object read back by pybpf's ELF loader)
-> :mod:`.plan` (plain data, cached on disk) -> :mod:`.runtime` (maps created, programs loaded
and attached through pybpf's kernel engine, a ring buffer carries printf/exit events,
:mod:`.output` prints maps exactly as bpftrace 0.17 does). :mod:`.command` is the command line.

The names below are imported on first use (PEP 562): ``pybpf trace`` on a cached script
imports none of the compiler.
"""

_EXPORTS = {"TraceSyntaxError": "parser", "parse": "parser", "compile_script": "build",
            "run": "runtime"}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
