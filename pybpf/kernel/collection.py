"""Load a whole object file into the kernel: every map once, shared by every program that
names it, then the programs, then the slots that name other objects (tail-call tables and
maps of maps) -- the order libbpf's ``bpf_object__load`` follows.

The object's BTF is loaded once and describes every map and program; it is released when
everything is loaded (each map and program keeps its own reference in the kernel).
"""

from __future__ import annotations

import errno

from ..errors import MapError, ObjectFileError
from .btf import load_btf
from .maps import BPFFS, KernelMap, create_map
from .prog import KernelProgram, load_program


class KernelCollection:
    """Live maps and programs of one object (cilium/ebpf's ``Collection``)."""

    def __init__(self, name: str, programs: dict[str, KernelProgram],
                 maps: dict[str, KernelMap]):
        self.name = name
        self.programs = programs
        self.maps = maps

    def close(self) -> None:
        for prog in self.programs.values():
            prog.close()
        for kmap in self.maps.values():
            kmap.close()

    def __enter__(self) -> "KernelCollection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<KernelCollection {self.name!r} programs={list(self.programs)} "
                f"maps={list(self.maps)}>")


def load_collection(obj, *, programs: list[str] | None = None, log_level: int = 0,
                    pin_root: str = BPFFS) -> KernelCollection:
    """Load ``obj`` (a :class:`pybpf.elf.ObjectSpec`, or a path/bytes for ``load_object``)."""
    if not hasattr(obj, "programs"):
        from ..elf import load_object
        obj = load_object(obj)
    chosen = {n: p for n, p in obj.programs.items() if programs is None or n in programs}
    if programs is not None and len(chosen) != len(programs):
        missing = sorted(set(programs) - set(chosen))
        raise ObjectFileError(f"{obj.name}: no program {', '.join(missing)} (programs: "
                              f"{', '.join(obj.programs)})")
    btf_bytes = next((p.btf for p in chosen.values() if getattr(p, "btf", None)), None)
    btf = load_btf(btf_bytes) if btf_bytes else None
    maps: dict[str, KernelMap] = {}
    loaded: dict[str, KernelProgram] = {}
    try:
        specs = dict(obj.maps)
        for prog in chosen.values():
            for spec in prog.maps:
                specs.setdefault(spec.name, spec)
        for name, spec in specs.items():
            maps[name] = create_map(spec, btf_fd=btf.fd if btf else 0, pin_root=pin_root)
        for name, prog in chosen.items():
            loaded[name] = load_program(prog, maps=[maps[s.name] for s in prog.maps],
                                        btf_fd=btf.fd if btf else 0, log_level=log_level)
        for name, spec in specs.items():
            for slot, target in getattr(spec, "init_refs", {}).items():
                if target in loaded:
                    maps[name].update(slot, loaded[target].fd)
                elif target in maps:
                    maps[name].update(slot, maps[target].fd)
                elif spec.type != "prog_array" or programs is None:
                    raise MapError(f"map '{name}' slot {slot} names '{target}', which is "
                                   "neither a loaded program nor a map", errno=errno.ENOENT)
    except BaseException:
        for prog in loaded.values():
            prog.close()
        for kmap in maps.values():
            kmap.close()
        raise
    finally:
        if btf is not None:
            btf.close()
    return KernelCollection(obj.name, loaded, maps)
