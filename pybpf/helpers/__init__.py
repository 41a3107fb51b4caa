"""The helper-function catalogue: one table entry per helper.

Each :class:`Helper` carries the kernel's id and name, a :class:`HelperProto` (argument and
return types in the kernel's own ``ARG_*`` / ``RET_*`` vocabulary, lower-cased and without the
prefix, so the verifier can check calls) and an implementation used by the interpreter and the
JIT. Implementations are registered with :func:`helper` from the modules of this package, each
holding one family (``basic``, ``maps``, ``packet``, ...), and looked up by id in
:data:`HELPERS`.

An implementation is called as ``impl(env, r1, r2, r3, r4, r5) -> int`` where ``env`` is the
engine's :class:`HelperEnv` (checked memory access, live maps, program context) and the
arguments are the raw unsigned 64-bit register values. It returns the new r0. Bad arguments
at run time raise :class:`pybpf.errors.HelperError` (the engine adds the pc).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from .ids import HELPER_IDS, HELPER_NAMES  # noqa: F401  (re-exported: id <-> name)


class HelperEnv(Protocol):
    """What an engine offers a helper implementation."""

    def read(self, addr: int, size: int) -> bytes: ...
    def write(self, addr: int, data: bytes) -> None: ...
    def map_from_ptr(self, ptr: int) -> Any: ...


@dataclass(frozen=True, slots=True)
class HelperProto:
    """The helper's signature as the verifier sees it (kernel's ``bpf_func_proto``)."""

    ret: str                    # "integer", "void", "ptr_to_map_value_or_null", ...
    args: tuple[str, ...] = ()  # "anything", "const_map_ptr", "ptr_to_map_key", "ptr_to_ctx", ...
    gpl_only: bool = False


Impl = Callable[..., int]


@dataclass(frozen=True, slots=True)
class Helper:
    id: int
    name: str
    proto: HelperProto
    impl: Impl | None = None


#: every helper pybpf implements, by the kernel's id
HELPERS: dict[int, Helper] = {}

#: modules that register helpers (imported lazily by :func:`get_helper`)
FAMILIES = ["basic", "maps", "packet", "tracing", "misc", "dynptr"]
_loaded = False


def helper(name: str, ret: str, *args: str, gpl_only: bool = False) -> Callable[[Impl], Impl]:
    """Register ``impl`` as the implementation of the kernel helper ``name``."""

    def register(impl: Impl) -> Impl:
        hid = HELPER_IDS[name]
        HELPERS[hid] = Helper(hid, name, HelperProto(ret, tuple(args), gpl_only), impl)
        return impl

    return register


def load_all() -> dict[int, Helper]:
    global _loaded
    if not _loaded:
        for family in FAMILIES:
            try:
                importlib.import_module(f"{__name__}.{family}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{family}":
                    raise
        _loaded = True
    return HELPERS


def get_helper(hid: int) -> Helper | None:
    return load_all().get(hid)
