"""Program and MapSpec: the hub every front end produces and every engine consumes.

A :class:`Program` is plain data (a *spec* in cilium/ebpf's words): instructions, the maps it
refers to, its program type and names. Nothing here is live; engines (interpreter, JIT, kernel)
make live objects from it.

Map references: an instruction that loads a map (``r1 = counters ll``) is a ``lddw`` whose
source is ``PSEUDO_MAP_IDX`` (or ``PSEUDO_MAP_IDX_VALUE``) and whose immediate is the index of
the map in ``Program.maps`` -- the kernel's fd_array convention, so raw bytecode stays
self-contained. ``map_refs`` records which instruction names which map for loaders that need
to patch file descriptors in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import isa


@dataclass
class MapSpec:
    """A map as a program declares it (not yet created anywhere)."""

    name: str
    type: str                 # the kernel's name without BPF_MAP_TYPE_: hash, array, ...
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    inner: "MapSpec | None" = None
    pinning: int = 0
    contents: list[tuple[bytes, bytes]] = field(default_factory=list)
    # BTF type ids of key and value, when the object had BTF (filled by the ELF loader)
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    # bpf_attr.map_extra: bloom_filter's number of hash functions (low 4 bits)
    map_extra: int = 0
    # initial values that name other objects (filled by the ELF loader): slot index -> the name
    # of a program (prog_array) or of a map (array_of_maps / hash_of_maps); the loader puts the
    # live program or map there once it exists
    init_refs: dict[int, str] = field(default_factory=dict)


@dataclass
class MapRef:
    """Instruction ``index`` (logical index into ``Program.insns``) refers to ``map_name``."""

    index: int
    map_name: str
    value_offset: int | None = None  # set for PSEUDO_MAP_VALUE-style references


@dataclass
class Program:
    """A BPF program: instructions plus what they need to run."""

    insns: list[isa.Instruction]
    name: str = "prog"
    prog_type: str = "socket_filter"
    maps: list[MapSpec] = field(default_factory=list)
    map_refs: list[MapRef] = field(default_factory=list)
    license: str = "GPL"
    section: str | None = None
    # source line per slot index, when known (from BTF line_info or an assembly file)
    lines: dict[int, str] = field(default_factory=dict)
    # labels by slot index (subprogram and jump target names from assembly or symbols)
    labels: dict[int, str] = field(default_factory=dict)
    # kernel-side BTF, when the program came from an object with BTF (filled by the ELF loader):
    # the object's .BTF made loadable (bpf(BPF_BTF_LOAD)), and BPF_PROG_LOAD's func_info
    # (slot, BTF FUNC id) and line_info (slot, file_name_off, line_off, line_col) records;
    # the kernel needs them e.g. for bpf_loop callbacks and global functions
    btf: bytes | None = None
    func_info: list[tuple[int, int]] = field(default_factory=list)
    line_info: list[tuple[int, int, int, int]] = field(default_factory=list)
    # expected_attach_type as the kernel names it (cgroup_inet_ingress, ...), when needed
    attach_type: str | None = None

    def bytecode(self) -> bytes:
        return isa.encode(self.insns)

    @property
    def num_slots(self) -> int:
        return sum(i.slots for i in self.insns)

    def map_by_name(self, name: str) -> MapSpec:
        for spec in self.maps:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @classmethod
    def from_bytes(cls, data: bytes, **kwargs) -> "Program":
        return cls(isa.decode(data), **kwargs)
