"""BTF type kinds as dataclasses, and the :class:`BTF` container that hands them out by id.

Follows the kernel's ``Documentation/bpf/btf.rst`` (``struct btf_type`` and the per-kind data
that follows it). A type refers to other types by id, never by object, exactly as the encoding
does: that keeps decoding lazy (the kernel's ``vmlinux`` BTF has ~100k types and a program
only looks at a handful) and makes cycles (a struct holding a pointer to itself) harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Iterator

from ..errors import BTFError

# kind numbers (BTF_KIND_*), one line each
KIND_NAMES = {
    0: "void", 1: "int", 2: "ptr", 3: "array", 4: "struct", 5: "union", 6: "enum", 7: "fwd",
    8: "typedef", 9: "volatile", 10: "const", 11: "restrict", 12: "func", 13: "func_proto",
    14: "var", 15: "datasec", 16: "float", 17: "decl_tag", 18: "type_tag", 19: "enum64",
}
KIND_IDS = {name: num for num, name in KIND_NAMES.items()}

# BTF_INT_* encoding bits
INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4

# linkage of FUNC (btf_func_linkage) and VAR (btf_var_linkage)
FUNC_LINKAGE = {0: "static", 1: "global", 2: "extern"}
VAR_LINKAGE = {0: "static", 1: "global", 2: "extern"}

#: kinds that only qualify the type they point to
MODIFIERS = frozenset({"typedef", "volatile", "const", "restrict", "type_tag"})


@dataclass(slots=True)
class Type:
    """Common part of every kind: the type's id and name ('' when anonymous)."""

    id: int
    name: str
    kind: ClassVar[str] = "void"


@dataclass(slots=True)
class Void(Type):
    kind: ClassVar[str] = "void"


@dataclass(slots=True)
class Int(Type):
    size: int = 0
    encoding: int = 0   # INT_SIGNED | INT_CHAR | INT_BOOL
    bits: int = 0
    offset: int = 0
    kind: ClassVar[str] = "int"

    @property
    def signed(self) -> bool:
        return bool(self.encoding & INT_SIGNED)


@dataclass(slots=True)
class Float(Type):
    size: int = 0
    kind: ClassVar[str] = "float"


@dataclass(slots=True)
class Pointer(Type):
    type_id: int = 0
    kind: ClassVar[str] = "ptr"


@dataclass(slots=True)
class Array(Type):
    type_id: int = 0
    index_type_id: int = 0
    nelems: int = 0
    kind: ClassVar[str] = "array"


@dataclass(slots=True)
class Member:
    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int = 0   # 0: not a bitfield


@dataclass(slots=True)
class Struct(Type):
    size: int = 0
    members: list[Member] = field(default_factory=list)
    kind: ClassVar[str] = "struct"


@dataclass(slots=True)
class Union(Struct):
    kind: ClassVar[str] = "union"


@dataclass(slots=True)
class EnumValue:
    name: str
    value: int


@dataclass(slots=True)
class Enum(Type):
    size: int = 4
    values: list[EnumValue] = field(default_factory=list)
    signed: bool = False
    kind: ClassVar[str] = "enum"


@dataclass(slots=True)
class Enum64(Enum):
    kind: ClassVar[str] = "enum64"


@dataclass(slots=True)
class Fwd(Type):
    is_union: bool = False
    kind: ClassVar[str] = "fwd"


@dataclass(slots=True)
class Typedef(Type):
    type_id: int = 0
    kind: ClassVar[str] = "typedef"


@dataclass(slots=True)
class Volatile(Typedef):
    kind: ClassVar[str] = "volatile"


@dataclass(slots=True)
class Const(Typedef):
    kind: ClassVar[str] = "const"


@dataclass(slots=True)
class Restrict(Typedef):
    kind: ClassVar[str] = "restrict"


@dataclass(slots=True)
class TypeTag(Typedef):
    kind: ClassVar[str] = "type_tag"


@dataclass(slots=True)
class Func(Type):
    type_id: int = 0        # its FUNC_PROTO
    linkage: str = "static"
    kind: ClassVar[str] = "func"


@dataclass(slots=True)
class Param:
    name: str
    type_id: int            # 0 for the trailing '...' of a variadic function


@dataclass(slots=True)
class FuncProto(Type):
    return_type_id: int = 0
    params: list[Param] = field(default_factory=list)
    kind: ClassVar[str] = "func_proto"


@dataclass(slots=True)
class Var(Type):
    type_id: int = 0
    linkage: str = "static"
    kind: ClassVar[str] = "var"


@dataclass(slots=True)
class VarSecinfo:
    type_id: int            # a VAR (or FUNC for .ksyms)
    offset: int
    size: int


@dataclass(slots=True)
class Datasec(Type):
    size: int = 0
    vars: list[VarSecinfo] = field(default_factory=list)
    kind: ClassVar[str] = "datasec"


@dataclass(slots=True)
class DeclTag(Type):
    type_id: int = 0
    component_idx: int = -1
    kind: ClassVar[str] = "decl_tag"


class BTF:
    """A parsed BTF blob: types by id (id 0 is void), names, sizes.

    Built by :func:`pybpf.btf.parser.parse_btf`; types are decoded on first access.
    """

    def __init__(self, raw: bytes, decoder, count: int, name_offsets, strings):
        self.raw = raw                  # the whole .BTF section, as read
        self._decode = decoder          # id -> Type
        self._count = count             # number of types including void
        self._name_offsets = name_offsets
        self.strings = strings
        self._cache: dict[int, Type] = {0: Void(0, "")}
        self._by_name: dict[str, list[int]] | None = None

    # --- access ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    def __getitem__(self, type_id: int) -> Type:
        t = self._cache.get(type_id)
        if t is None:
            if not 0 <= type_id < self._count:
                raise BTFError(f"BTF: type id {type_id} out of range (0..{self._count - 1})")
            t = self._cache[type_id] = self._decode(type_id)
        return t

    def __iter__(self) -> Iterator[Type]:
        for type_id in range(self._count):
            yield self[type_id]

    def name_of(self, type_id: int) -> str:
        if type_id == 0:
            return ""
        return self.strings.get(self._name_offsets[type_id])

    def find(self, name: str, kind: str | None = None) -> list[Type]:
        """Every type called ``name`` (optionally of one kind), in id order."""
        if self._by_name is None:
            by_name: dict[str, list[int]] = {}
            names = self.strings.all()
            get = self.strings.get
            for type_id, off in enumerate(self._name_offsets):
                if type_id:
                    type_name = names.get(off)
                    if type_name is None:
                        type_name = get(off)
                    same = by_name.get(type_name)
                    if same is None:
                        by_name[type_name] = [type_id]
                    else:
                        same.append(type_id)
            self._by_name = by_name
        found = [self[i] for i in self._by_name.get(name, ())]
        return [t for t in found if kind is None or t.kind == kind]

    def enumerator(self, name: str) -> tuple[int, Enum] | None:
        """(value, its enum) of the enumerator ``name`` (a C identifier such as
        ``SKB_DROP_REASON_NOT_SPECIFIED``), or None. Only enum types are decoded to build the
        index: a kernel's BTF has some 100,000 types, a few thousand of them enums."""
        if getattr(self, "_enumerators", None) is None:
            index: dict[str, tuple[int, Enum]] = {}
            offsets = getattr(self, "type_offsets", None)
            ids = range(1, self._count) if offsets is None else (
                i for i in range(1, self._count)
                if (int.from_bytes(self.raw[offsets[i] + 4:offsets[i] + 8], "little") >> 24
                    & 0x1F) in (6, 19))     # BTF_KIND_ENUM, BTF_KIND_ENUM64
            for type_id in ids:
                t = self[type_id]
                if isinstance(t, Enum):
                    for v in t.values:
                        index.setdefault(v.name, (v.value, t))
            self._enumerators = index
        return self._enumerators.get(name)

    def find_one(self, name: str, kind: str | None = None) -> Type:
        found = self.find(name, kind)
        if not found:
            raise BTFError(f"BTF: no {kind or 'type'} named '{name}'")
        return found[0]

    # --- type algebra ---------------------------------------------------------------------
    def skip_modifiers(self, type_id: int) -> Type:
        """The type behind typedefs, const, volatile, restrict and type tags."""
        t = self[type_id]
        seen = 0
        while t.kind in MODIFIERS:
            t = self[t.type_id]
            seen += 1
            if seen > 64:
                raise BTFError(f"BTF: modifier loop at type {type_id}")
        return t

    def sizeof(self, type_id: int, _depth: int = 0) -> int:
        """Size in bytes of a type, as the kernel's btf_type_size resolves it."""
        if _depth > 64:
            raise BTFError(f"BTF: type {type_id} refers to itself")
        t = self.skip_modifiers(type_id)
        depth = 0
        mult = 1
        while isinstance(t, Array):
            mult *= t.nelems
            t = self.skip_modifiers(t.type_id)
            depth += 1
            if depth > 64:
                raise BTFError(f"BTF: array nesting too deep at type {type_id}")
        if isinstance(t, Pointer):
            return 8 * mult
        if isinstance(t, Var):
            return self.sizeof(t.type_id, _depth + 1) * mult
        size = getattr(t, "size", None)
        if size is None:
            raise BTFError(f"BTF: type {type_id} ({t.kind} '{t.name}') has no size")
        return size * mult

    def describe(self, type_id: int) -> str:
        """Short human description: 'struct foo', 'u32', 'int *'."""
        from .cprinter import type_name
        return type_name(self, type_id)
