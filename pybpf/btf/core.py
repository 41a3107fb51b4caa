"""CO-RE (Compile Once - Run Everywhere) relocations, resolved as libbpf does.

clang records, for every instruction that depends on a type's layout, a ``bpf_core_relo``:
the instruction, a root type in the object's (local) BTF, an *access string* ("0:1:2":
array index on the root, then member / element indices) and what is wanted (a field's byte
offset, size, existence, signedness, bitfield shifts; a type's id, size or existence; an enum
value). Resolution follows libbpf's ``relo_core.c``:

1. parse the local access string into a spec (``bpf_core_parse_spec``);
2. find candidate types in the target BTF with the same *essential* name (the name without a
   ``___flavor`` suffix) and a compatible kind (``bpf_core_find_cands``);
3. match the spec on each candidate by member *names* (anonymous members are looked through),
   checking field-type compatibility (``bpf_core_spec_match``, ``bpf_core_fields_are_compat``);
4. compute the value for the local and the target spec; all matching candidates must agree;
5. patch the instruction: an ALU immediate, a load/store offset (adjusting the access size
   when the field's size changed) or a 64-bit immediate; if nothing matched and the relocation
   is not an existence check, *poison* the instruction with ``call 0xbad2310`` so the verifier
   refuses it only if that code path is reachable.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BTFError
from . import types as T
from .parser import CORE_RELO_KINDS, CoreRelo

FIELD_BYTE_OFFSET, FIELD_BYTE_SIZE, FIELD_EXISTS, FIELD_SIGNED = 0, 1, 2, 3
FIELD_LSHIFT_U64, FIELD_RSHIFT_U64 = 4, 5
TYPE_ID_LOCAL, TYPE_ID_TARGET, TYPE_EXISTS, TYPE_SIZE = 6, 7, 8, 9
ENUMVAL_EXISTS, ENUMVAL_VALUE, TYPE_MATCHES = 10, 11, 12

FIELD_KINDS = frozenset(range(0, 6))
TYPE_KINDS = frozenset({TYPE_ID_LOCAL, TYPE_ID_TARGET, TYPE_EXISTS, TYPE_SIZE, TYPE_MATCHES})
ENUM_KINDS = frozenset({ENUMVAL_EXISTS, ENUMVAL_VALUE})
#: kinds that resolve to 0 instead of poisoning when nothing matches
EXISTENCE_KINDS = frozenset({FIELD_EXISTS, TYPE_EXISTS, TYPE_MATCHES, ENUMVAL_EXISTS,
                             TYPE_ID_TARGET})

#: libbpf's poison: a call to this (invalid) helper id
POISON_HELPER = 0xBAD2310


@dataclass(slots=True)
class Accessor:
    type_id: int        # the composite/array/enum the index applies to
    index: int
    name: str | None    # member or enumerator name (None for array elements)


@dataclass(slots=True)
class Spec:
    btf: T.BTF
    root_type_id: int
    access: list[Accessor]      # named members and array elements (what matching walks)
    raw: list[int]
    bit_offset: int = 0
    field_type_id: int = 0      # type of the accessed field
    bitfield_size: int = 0


@dataclass(slots=True)
class CoreResult:
    """What a relocation resolves to; ``poison`` when no target matched."""

    kind: int
    local_value: int
    value: int
    poison: bool = False
    local_size: int = 0     # field size locally and in the target (for load size fix-ups)
    target_size: int = 0
    target_type_id: int = 0
    # whether the instruction must hold the local value before patching; libbpf skips the
    # check for bitfields, whose compiled load size clang picks differently
    validate: bool = True


def essential_name(name: str) -> str:
    """'task_struct___v2' -> 'task_struct' (libbpf's flavor convention)."""
    cut = name.find("___")
    return name if cut < 0 else name[:cut]


def _kind_group(kind: str) -> str:
    return "enum" if kind in ("enum", "enum64") else kind


def parse_spec(btf: T.BTF, relo: CoreRelo) -> Spec:
    """Local spec from the relocation's access string (``bpf_core_parse_spec``)."""
    try:
        raw = [int(x) for x in relo.access.split(":")]
    except ValueError:
        raise BTFError(f"CO-RE: bad access string '{relo.access}'") from None
    if not raw or relo.type_id <= 0 or relo.type_id >= len(btf):
        raise BTFError(f"CO-RE: relocation refers to bad type {relo.type_id} or empty access")
    spec = Spec(btf, relo.type_id, [], raw)
    if relo.kind in TYPE_KINDS:
        if raw != [0]:
            raise BTFError(f"CO-RE: type relocation with access '{relo.access}' (expected '0')")
        return spec
    if relo.kind in ENUM_KINDS:
        t = btf.skip_modifiers(relo.type_id)
        if not isinstance(t, T.Enum) or len(raw) != 1 or raw[0] >= len(t.values):
            raise BTFError(f"CO-RE: bad enum value access '{relo.access}' on type "
                           f"{relo.type_id}")
        spec.access.append(Accessor(t.id, raw[0], t.values[raw[0]].name))
        return spec
    if relo.kind not in FIELD_KINDS:
        raise BTFError(f"CO-RE: unknown relocation kind {relo.kind}")
    type_id = relo.type_id
    spec.bit_offset = raw[0] * btf.sizeof(type_id) * 8
    spec.access.append(Accessor(type_id, raw[0], None))
    for idx in raw[1:]:
        t = btf.skip_modifiers(type_id)
        if isinstance(t, T.Struct):
            if idx >= len(t.members):
                raise BTFError(f"CO-RE: access '{relo.access}': member {idx} of "
                               f"{t.kind} '{t.name}' does not exist")
            m = t.members[idx]
            spec.bit_offset += m.bit_offset
            spec.bitfield_size = m.bitfield_size
            if m.name:
                spec.access.append(Accessor(t.id, idx, m.name))
            type_id = m.type_id
        elif isinstance(t, T.Array):
            spec.bit_offset += idx * btf.sizeof(t.type_id) * 8
            spec.bitfield_size = 0
            spec.access.append(Accessor(t.id, idx, None))
            type_id = t.type_id
        else:
            raise BTFError(f"CO-RE: access '{relo.access}' indexes into a {t.kind}")
    spec.field_type_id = type_id
    return spec


def fields_compatible(lb: T.BTF, lid: int, tb: T.BTF, tid: int, depth: int = 0) -> bool:
    """``bpf_core_fields_are_compat``: may a local field be read as the target's field?"""
    lt, tt = lb.skip_modifiers(lid), tb.skip_modifiers(tid)
    if isinstance(lt, T.Struct) and isinstance(tt, T.Struct):
        return True
    if _kind_group(lt.kind) != _kind_group(tt.kind):
        return False
    if lt.kind in ("enum", "enum64", "fwd", "float", "ptr"):
        return True
    if isinstance(lt, T.Int):
        return lt.offset == 0 and tt.offset == 0
    if isinstance(lt, T.Array) and depth < 32:
        return fields_compatible(lb, lt.type_id, tb, tt.type_id, depth + 1)
    return False


def types_compatible(lb: T.BTF, lid: int, tb: T.BTF, tid: int, depth: int = 0) -> bool:
    """``bpf_core_types_are_compat``: same shape, ignoring names below the top level."""
    lt, tt = lb.skip_modifiers(lid), tb.skip_modifiers(tid)
    if _kind_group(lt.kind) != _kind_group(tt.kind) or depth > 32:
        return False
    if lt.kind in ("struct", "union", "fwd", "enum", "enum64", "float", "void"):
        return True
    if isinstance(lt, T.Int):
        return lt.offset == 0 and tt.offset == 0
    if isinstance(lt, T.Pointer):
        return types_compatible(lb, lt.type_id, tb, tt.type_id, depth + 1)
    if isinstance(lt, T.Array):
        return types_compatible(lb, lt.type_id, tb, tt.type_id, depth + 1)
    if isinstance(lt, T.FuncProto):
        if len(lt.params) != len(tt.params):
            return False
        return all(types_compatible(lb, a.type_id, tb, b.type_id, depth + 1)
                   for a, b in zip(lt.params, tt.params)) and \
            types_compatible(lb, lt.return_type_id, tb, tt.return_type_id, depth + 1)
    return False


def _find_member(btf: T.BTF, type_id: int, name: str, depth: int = 0):
    """(bit offset, member) of a member called ``name``, looking through anonymous members."""
    t = btf.skip_modifiers(type_id)
    if not isinstance(t, T.Struct) or depth > 32:
        return None
    for m in t.members:
        if m.name == name:
            return m.bit_offset, m
        if not m.name:
            found = _find_member(btf, m.type_id, name, depth + 1)
            if found:
                return m.bit_offset + found[0], found[1]
    return None


def match_spec(local: Spec, tb: T.BTF, target_id: int) -> Spec | None:
    """``bpf_core_spec_match``: the target spec, or None when the candidate does not fit."""
    lb = local.btf
    spec = Spec(tb, target_id, [], list(local.raw))
    first = local.access[0]
    spec.bit_offset = first.index * tb.sizeof(target_id) * 8
    spec.access.append(Accessor(target_id, first.index, None))
    type_id = target_id
    for acc in local.access[1:]:
        if acc.name is not None:
            found = _find_member(tb, type_id, acc.name)
            if found is None:
                return None
            bit_off, m = found
            local_m = lb.skip_modifiers(acc.type_id).members[acc.index]
            if not fields_compatible(lb, local_m.type_id, tb, m.type_id):
                return None
            spec.bit_offset += bit_off
            spec.bitfield_size = m.bitfield_size
            spec.access.append(Accessor(type_id, 0, acc.name))
            type_id = m.type_id
        else:
            t = tb.skip_modifiers(type_id)
            if not isinstance(t, T.Array):
                return None
            flexible = t.nelems == 0
            if not flexible and acc.index >= t.nelems:
                return None
            spec.bit_offset += acc.index * tb.sizeof(t.type_id) * 8
            spec.bitfield_size = 0
            spec.access.append(Accessor(t.id, acc.index, None))
            type_id = t.type_id
    spec.field_type_id = type_id
    return spec


def _field_value(spec: Spec, kind: int) -> tuple[int, int]:
    """(value, field byte size) of a field relocation for one spec (``calc_field_relo``)."""
    btf = spec.btf
    bit_off = spec.bit_offset
    ft = btf.skip_modifiers(spec.field_type_id) if spec.field_type_id else None
    if spec.bitfield_size:
        bit_sz = spec.bitfield_size
        byte_sz = btf.sizeof(spec.field_type_id)
        byte_off = bit_off // 8 // byte_sz * byte_sz
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                raise BTFError("CO-RE: bitfield does not fit in 8 bytes")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    else:
        byte_sz = btf.sizeof(spec.field_type_id) if spec.field_type_id else 0
        bit_sz = byte_sz * 8
        byte_off = bit_off // 8
    if kind == FIELD_BYTE_OFFSET:
        return byte_off, byte_sz
    if kind == FIELD_BYTE_SIZE:
        return byte_sz, byte_sz
    if kind == FIELD_EXISTS:
        return 1, byte_sz
    if kind == FIELD_SIGNED:
        signed = (isinstance(ft, T.Enum) and ft.signed) or (isinstance(ft, T.Int) and ft.signed)
        return int(bool(signed)), byte_sz
    if kind == FIELD_LSHIFT_U64:
        return 64 - (bit_off + bit_sz - byte_off * 8), byte_sz
    if kind == FIELD_RSHIFT_U64:
        return 64 - bit_sz, byte_sz
    raise BTFError(f"CO-RE: unknown field relocation kind {kind}")


class Candidates:
    """Target types by essential name (built once per target BTF)."""

    _cache: dict[int, "Candidates"] = {}

    def __init__(self, btf: T.BTF):
        self.btf = btf
        btf.find("")  # builds the BTF's name index once
        flavored: dict[str, list[str]] = {}
        for name in btf._by_name or {}:
            if "___" in name:
                flavored.setdefault(essential_name(name), []).append(name)
        self.flavored = flavored

    @classmethod
    def of(cls, btf: T.BTF) -> "Candidates":
        hit = cls._cache.get(id(btf))
        if hit is None or hit.btf is not btf:
            hit = cls._cache[id(btf)] = cls(btf)
        return hit

    def find(self, local: T.Type) -> list[T.Type]:
        group = _kind_group(local.kind)
        base = essential_name(local.name)
        found = list(self.btf.find(base))
        for name in self.flavored.get(base, ()):
            found.extend(self.btf.find(name))
        return [t for t in found if _kind_group(t.kind) == group]


def resolve(relo: CoreRelo, local_btf: T.BTF, target_btf: T.BTF) -> CoreResult:
    """Resolve one relocation against ``target_btf`` (the kernel's, or the local one)."""
    kind = relo.kind
    if kind not in CORE_RELO_KINDS:
        raise BTFError(f"CO-RE: unknown relocation kind {kind}")
    local = parse_spec(local_btf, relo)
    local_t = local_btf[relo.type_id]
    root = local_btf.skip_modifiers(relo.type_id) if kind in FIELD_KINDS else local_t
    local_value, local_size = _local_value(local, kind)
    validate = not (kind in FIELD_KINDS and local.bitfield_size)
    if kind == TYPE_ID_LOCAL:
        return CoreResult(kind, local_value, local_value)
    if not root.name:
        raise BTFError(f"CO-RE: relocation on an anonymous {root.kind} (type {relo.type_id})")
    results: list[tuple[int, int, int]] = []
    for cand in Candidates.of(target_btf).find(root):
        got = _target_value(local, kind, target_btf, cand)
        if got is not None:
            results.append(got)
    if not results:
        if kind in EXISTENCE_KINDS:
            return CoreResult(kind, local_value, 0, local_size=local_size, validate=validate)
        return CoreResult(kind, local_value, 0, poison=True, local_size=local_size,
                          validate=validate)
    values = {r[0] for r in results}
    if len(values) > 1:
        raise BTFError(f"CO-RE: relocation on '{root.name}' ({relo.kind_name}, access "
                       f"'{relo.access}') is ambiguous: candidates give {sorted(values)}")
    value, size, target_id = results[0]
    return CoreResult(kind, local_value, value, False, local_size, size, target_id, validate)


def _local_value(spec: Spec, kind: int) -> tuple[int, int]:
    btf = spec.btf
    if kind in FIELD_KINDS:
        return _field_value(spec, kind)
    if kind in (TYPE_ID_LOCAL, TYPE_ID_TARGET):
        return spec.root_type_id, 0
    if kind in (TYPE_EXISTS, TYPE_MATCHES, ENUMVAL_EXISTS):
        return 1, 0
    if kind == TYPE_SIZE:
        return btf.sizeof(spec.root_type_id), 0
    if kind == ENUMVAL_VALUE:
        t = btf.skip_modifiers(spec.root_type_id)
        return t.values[spec.access[0].index].value, 0
    raise BTFError(f"CO-RE: unknown relocation kind {kind}")


def _target_value(local: Spec, kind: int, tb: T.BTF, cand: T.Type):
    lb = local.btf
    if kind in FIELD_KINDS:
        spec = match_spec(local, tb, cand.id)
        if spec is None:
            return None
        value, size = _field_value(spec, kind)
        return value, size, cand.id
    if kind in TYPE_KINDS:
        if not types_compatible(lb, local.root_type_id, tb, cand.id):
            return None
        if kind == TYPE_ID_TARGET:
            return cand.id, 0, cand.id
        if kind == TYPE_SIZE:
            return tb.sizeof(cand.id), 0, cand.id
        return 1, 0, cand.id
    # enum values: an enumerator of the same essential name
    wanted = essential_name(local.access[0].name or "")
    target = tb.skip_modifiers(cand.id)
    if not isinstance(target, T.Enum):
        return None
    for v in target.values:
        if essential_name(v.name) == wanted:
            return (1 if kind == ENUMVAL_EXISTS else v.value), 0, cand.id
    return None
