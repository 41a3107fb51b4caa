"""Which helpers each program type may call (the kernel's ``*_func_proto`` callbacks).

The verifier's table (:mod:`pybpf.verifier.progtypes`) is the one source of truth for the types
it knows, so the interpreter refuses at load exactly the calls the verifier would; the engine's
extra types (uprobe, tracing, lsm) borrow their sets from there.
"""

from __future__ import annotations

from ..verifier.progtypes import BASE_HELPERS, NOT_FOR, PROG_TYPES as _VERIFIER_TYPES

__all__ = ["BASE_HELPERS", "allowed", "helpers_of"]

_LOCAL = {
    "uprobe": _VERIFIER_TYPES["kprobe"].helpers,
    "tracing": _VERIFIER_TYPES["raw_tracepoint"].helpers,
    "lsm": _VERIFIER_TYPES["raw_tracepoint"].helpers,
}


def helpers_of(prog_type: str) -> frozenset[str]:
    """Helper names (kernel names without ``bpf_``) a type may call besides BASE_HELPERS."""
    if prog_type in _LOCAL:
        return frozenset(_LOCAL[prog_type])
    found = _VERIFIER_TYPES.get(prog_type)
    return found.helpers if found is not None else frozenset()


def allowed(prog_type: str, helper: str) -> bool:
    """Whether ``prog_type`` programs may call ``helper`` (kernel name without ``bpf_``)."""
    if helper in NOT_FOR.get(prog_type, ()):
        return False
    return helper in BASE_HELPERS or helper in helpers_of(prog_type)
