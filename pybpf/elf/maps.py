"""Map definitions in an object file: BTF-defined maps in ``.maps`` and the legacy ``maps``.

BTF-defined maps follow libbpf's convention (``parse_btf_map_def`` in libbpf.c): each map is a
global variable in ``.maps`` whose type is an anonymous struct; each member encodes one
attribute in its *type*, never in data:

- ``__uint(name, N)`` is ``int (*name)[N]``: a pointer to an array of N ints -> the value N;
- ``__type(key, T)`` is ``T *key``: a pointer to the key type -> type id and size;
- ``__array(values, T)`` is ``T *values[]``: for map-in-map the inner map's definition, for a
  prog_array a function prototype; initial values come from relocations in ``.rel.maps``.

The legacy ``maps`` section holds ``struct bpf_map_def`` records (type, key_size, value_size,
max_entries, map_flags, ...), one per symbol; libbpf v1 no longer reads it, older loaders
(iproute2, bcc samples) do.
"""

from __future__ import annotations

import struct

from ..btf import types as T
from ..errors import ObjectFileError
from ..program import MapSpec

#: enum bpf_map_type, by value (the kernel's names without BPF_MAP_TYPE_, lower-cased)
MAP_TYPES = {
    0: "unspec", 1: "hash", 2: "array", 3: "prog_array", 4: "perf_event_array",
    5: "percpu_hash", 6: "percpu_array", 7: "stack_trace", 8: "cgroup_array", 9: "lru_hash",
    10: "lru_percpu_hash", 11: "lpm_trie", 12: "array_of_maps", 13: "hash_of_maps",
    14: "devmap", 15: "sockmap", 16: "cpumap", 17: "xskmap", 18: "sockhash",
    19: "cgroup_storage", 20: "reuseport_sockarray", 21: "percpu_cgroup_storage", 22: "queue",
    23: "stack", 24: "sk_storage", 25: "devmap_hash", 26: "struct_ops", 27: "ringbuf",
    28: "inode_storage", 29: "task_storage", 30: "bloom_filter", 31: "user_ringbuf",
    32: "cgrp_storage", 33: "arena",
}
MAP_TYPE_IDS = {name: num for num, name in MAP_TYPES.items()}

#: map types whose values are other maps or programs (initial values by relocation)
MAP_IN_MAP = frozenset({"array_of_maps", "hash_of_maps"})
PROG_ARRAY = "prog_array"

#: LIBBPF_PIN_BY_NAME
PIN_BY_NAME = 1

#: libbpf map flags for the internal maps of global data
BPF_F_RDONLY_PROG = 0x80
BPF_F_MMAPABLE = 0x400

_LEGACY_FIELDS = ("type", "key_size", "value_size", "max_entries", "map_flags")


def map_type_name(number: int, where: str) -> str:
    name = MAP_TYPES.get(number)
    if name is None:
        raise ObjectFileError(f"{where}: unknown map type {number}")
    return name


def _uint_attr(btf: T.BTF, member: T.Member, where: str) -> int:
    """Decode ``int (*name)[N]`` -> N."""
    ptr = btf.skip_modifiers(member.type_id)
    if not isinstance(ptr, T.Pointer):
        raise ObjectFileError(f"{where}: attribute '{member.name}' is not a pointer "
                              f"(expected __uint({member.name}, N))")
    arr = btf.skip_modifiers(ptr.type_id)
    if not isinstance(arr, T.Array):
        raise ObjectFileError(f"{where}: attribute '{member.name}' does not point to an array "
                              f"(expected __uint({member.name}, N))")
    return arr.nelems


def _type_attr(btf: T.BTF, member: T.Member, where: str) -> int:
    """Decode ``T *name`` -> the type id of T."""
    ptr = btf.skip_modifiers(member.type_id)
    if not isinstance(ptr, T.Pointer):
        raise ObjectFileError(f"{where}: attribute '{member.name}' is not a pointer "
                              f"(expected __type({member.name}, T))")
    return ptr.type_id


def parse_btf_map(btf: T.BTF, name: str, def_type_id: int, where: str,
                  inner_allowed: bool = True) -> MapSpec:
    """Build a MapSpec from the struct type of one ``.maps`` variable."""
    struct_t = btf.skip_modifiers(def_type_id)
    if not isinstance(struct_t, T.Struct) or struct_t.kind != "struct":
        raise ObjectFileError(f"{where}: map '{name}' definition is a {struct_t.kind}, "
                              f"not a struct")
    attrs: dict[str, int] = {}
    key_type = value_type = 0
    key_size = value_size = None
    inner: MapSpec | None = None
    values_member: T.Member | None = None
    for m in struct_t.members:
        if m.name in ("type", "max_entries", "map_flags", "numa_node", "pinning", "map_extra",
                      "key_size", "value_size"):
            attrs[m.name] = _uint_attr(btf, m, f"{where}: map '{name}'")
        elif m.name == "key":
            key_type = _type_attr(btf, m, f"{where}: map '{name}'")
        elif m.name == "value":
            value_type = _type_attr(btf, m, f"{where}: map '{name}'")
        elif m.name == "values":
            values_member = m
        else:
            raise ObjectFileError(f"{where}: map '{name}' has unknown attribute '{m.name}'")
    if "type" not in attrs:
        raise ObjectFileError(f"{where}: map '{name}' has no type")
    map_type = map_type_name(attrs["type"], f"{where}: map '{name}'")
    if key_type:
        key_size = btf.sizeof(key_type)
        if "key_size" in attrs and attrs["key_size"] != key_size:
            raise ObjectFileError(f"{where}: map '{name}': key_size {attrs['key_size']} "
                                  f"conflicts with the key type's size {key_size}")
    if value_type:
        value_size = btf.sizeof(value_type)
        if "value_size" in attrs and attrs["value_size"] != value_size:
            raise ObjectFileError(f"{where}: map '{name}': value_size {attrs['value_size']} "
                                  f"conflicts with the value type's size {value_size}")
    if values_member is not None:
        if map_type not in MAP_IN_MAP and map_type != PROG_ARRAY:
            raise ObjectFileError(f"{where}: map '{name}' of type {map_type} cannot have "
                                  f"'values'")
        arr = btf.skip_modifiers(values_member.type_id)
        if not isinstance(arr, T.Array):
            raise ObjectFileError(f"{where}: map '{name}': 'values' is not an array")
        ptr = btf.skip_modifiers(arr.type_id)
        if not isinstance(ptr, T.Pointer):
            raise ObjectFileError(f"{where}: map '{name}': 'values' elements are not pointers")
        if map_type in MAP_IN_MAP:
            if not inner_allowed:
                raise ObjectFileError(f"{where}: map '{name}': nested map-in-map is not "
                                      f"supported")
            inner = parse_btf_map(btf, f"{name}.inner", ptr.type_id, where, False)
            value_size = 4
        else:
            value_size = 4
    # fd-holding maps have 4-byte keys and values unless told otherwise (libbpf does the same)
    fd_map = map_type in MAP_IN_MAP | {PROG_ARRAY, "perf_event_array"}
    if key_size is None:
        key_size = attrs.get("key_size", 4 if fd_map else 0)
    if value_size is None:
        value_size = attrs.get("value_size", 4 if fd_map else 0)
    spec = MapSpec(name=name, type=map_type, key_size=key_size, value_size=value_size,
                   max_entries=attrs.get("max_entries", 0), flags=attrs.get("map_flags", 0),
                   inner=inner, pinning=attrs.get("pinning", 0),
                   btf_key_type_id=key_type, btf_value_type_id=value_type,
                   map_extra=attrs.get("map_extra", 0))
    return spec


def parse_legacy_maps(data: bytes, symbols: list[tuple[str, int]], where: str) -> list[MapSpec]:
    """``struct bpf_map_def`` records of the legacy ``maps`` section, one per symbol.

    Like libbpf's old reader, the record size is the section size divided by the number of
    map symbols; fields beyond the five known ones must be zero.
    """
    if not symbols:
        return []
    size = len(data) // len(symbols)
    if size < 4 * len(_LEGACY_FIELDS) or size * len(symbols) != len(data):
        raise ObjectFileError(f"{where}: {len(data)} bytes do not hold {len(symbols)} map "
                              f"definitions of at least {4 * len(_LEGACY_FIELDS)} bytes")
    specs = []
    for name, offset in symbols:
        if offset % size or offset + size > len(data):
            raise ObjectFileError(f"{where}: map symbol '{name}' at offset {offset} is not at a "
                                  f"record boundary")
        fields = struct.unpack_from("<5I", data, offset)
        if any(data[offset + 20:offset + size]):
            raise ObjectFileError(f"{where}: map '{name}' uses fields of bpf_map_def that "
                                  f"pybpf does not know")
        values = dict(zip(_LEGACY_FIELDS, fields))
        specs.append(MapSpec(name=name,
                             type=map_type_name(values["type"], f"{where}: map '{name}'"),
                             key_size=values["key_size"], value_size=values["value_size"],
                             max_entries=values["max_entries"], flags=values["map_flags"]))
    return specs
