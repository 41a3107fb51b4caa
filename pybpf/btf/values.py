"""Map keys and values as typed Python objects, decoded (and encoded) through BTF.

When an object carries BTF, every map knows its key and value types; bytes read from a map
become Python values following the C type, the way ``bpftool map dump`` shows them with BTF
(libbpf's btf_dumper): integers by signedness, ``bool``, enums as their enumerator (an ``int``
that knows its name), pointers as addresses, ``char`` arrays as ``bytes`` up to the NUL, other
arrays as lists (``__u8`` arrays too), structs and unions as :class:`Struct` records with attribute access,
bitfields extracted, a DATASEC (a global-data map like ``.bss``) as a record of its variables.
:func:`encode` goes the other way so tests can write typed keys and values.
"""

from __future__ import annotations

import struct
from typing import Any

from ..errors import BTFError
from . import types as T


class EnumValue(int):
    """An enum value: an ``int`` that prints as its enumerator name."""

    name: str

    def __new__(cls, value: int, name: str | None):
        obj = super().__new__(cls, value)
        obj.name = name or str(value)
        return obj

    def __repr__(self) -> str:
        return self.name


class Struct:
    """A decoded struct/union: members as attributes, in declaration order."""

    __slots__ = ("_type", "_fields")

    def __init__(self, type_name: str, fields: dict[str, Any]):
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_fields", fields)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(f"{self._type} has no member '{name}'") from None

    def __getitem__(self, name: str) -> Any:
        return self._fields[name]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("decoded values are read-only; build a dict to encode")

    def _asdict(self) -> dict[str, Any]:
        return {k: v._asdict() if isinstance(v, Struct) else v for k, v in self._fields.items()}

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, Struct):
            return self._fields == other._fields
        if isinstance(other, dict):
            return self._asdict() == other
        return NotImplemented

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._fields.items())
        return f"{self._type}({inner})"


def _int(data: bytes, size: int, signed: bool) -> int:
    return int.from_bytes(data[:size], "little", signed=signed)


def decode(btf: T.BTF, type_id: int, data: bytes, *, depth: int = 0) -> Any:
    """The Python value of ``data`` read as BTF type ``type_id``."""
    if depth > 32:
        raise BTFError(f"BTF: type {type_id} nests too deeply to decode")
    t = btf.skip_modifiers(type_id)
    if isinstance(t, T.Int):
        if len(data) < t.size:
            raise BTFError(f"BTF: {len(data)} bytes is too short for {t.name} ({t.size})")
        if t.encoding & T.INT_BOOL:
            return bool(_int(data, t.size, False))
        return _int(data, t.size, t.signed)
    if isinstance(t, T.Enum):
        value = _int(data, t.size, t.signed)
        name = next((v.name for v in t.values
                     if v.value == value or (v.value & ((1 << 8 * t.size) - 1)) == value), None)
        return EnumValue(value, name)
    if isinstance(t, T.Pointer):
        return _int(data, 8, False)
    if isinstance(t, T.Float):
        return struct.unpack_from({4: "<f", 8: "<d"}.get(t.size, "<d"), data)[0] \
            if t.size in (4, 8) else data[:t.size]
    if isinstance(t, T.Array):
        elem = btf.skip_modifiers(t.type_id)
        size = btf.sizeof(t.type_id)
        if isinstance(elem, T.Int) and size == 1 and elem.name == "char":
            raw = bytes(data[:t.nelems])
            return raw.split(b"\0", 1)[0]
        return [decode(btf, t.type_id, data[i * size:(i + 1) * size], depth=depth + 1)
                for i in range(t.nelems)]
    if isinstance(t, T.Struct):
        fields: dict[str, Any] = {}
        for i, m in enumerate(t.members):
            name = m.name or f"__anon{i}"
            if m.bitfield_size:
                word = int.from_bytes(data[:t.size], "little")
                value = (word >> m.bit_offset) & ((1 << m.bitfield_size) - 1)
                mt = btf.skip_modifiers(m.type_id)
                if getattr(mt, "signed", False) and value >> (m.bitfield_size - 1):
                    value -= 1 << m.bitfield_size
                fields[name] = value
                continue
            start = m.bit_offset // 8
            value = decode(btf, m.type_id, data[start:start + btf.sizeof(m.type_id)],
                           depth=depth + 1)
            if not m.name and isinstance(value, Struct):
                fields.update(value._fields)     # anonymous members read through
            else:
                fields[name] = value
        return Struct(f"{t.kind} {t.name}" if t.name else t.kind, fields)
    if isinstance(t, T.Datasec):
        fields = {}
        for v in t.vars:
            var = btf[v.type_id]
            fields[var.name] = decode(btf, var.type_id if isinstance(var, T.Var) else v.type_id,
                                      data[v.offset:v.offset + v.size], depth=depth + 1)
        return Struct(t.name, fields)
    if isinstance(t, T.Var):
        return decode(btf, t.type_id, data, depth=depth + 1)
    if isinstance(t, T.Void):
        return bytes(data)
    raise BTFError(f"BTF: cannot decode a value of kind {t.kind}")


def encode(btf: T.BTF, type_id: int, value: Any) -> bytes:
    """Bytes of ``value`` as BTF type ``type_id`` (ints, bytes/str, lists, dicts, Structs)."""
    t = btf.skip_modifiers(type_id)
    size = btf.sizeof(type_id)
    if isinstance(value, (bytes, bytearray)) and not isinstance(t, T.Array):
        if len(value) != size:
            raise BTFError(f"BTF: {len(value)} bytes given for a {size}-byte "
                           f"{btf.describe(type_id)}")
        return bytes(value)
    if isinstance(t, (T.Int, T.Enum, T.Pointer)):
        signed = getattr(t, "signed", False)
        try:
            return int(value).to_bytes(size, "little", signed=signed and int(value) < 0)
        except OverflowError:
            raise BTFError(f"BTF: {value} does not fit in {btf.describe(type_id)}") from None
    if isinstance(t, T.Float):
        return struct.pack("<f" if size == 4 else "<d", float(value))
    if isinstance(t, T.Array):
        if isinstance(value, str):
            value = value.encode()
        if isinstance(value, (bytes, bytearray)):
            if len(value) > size:
                raise BTFError(f"BTF: {len(value)} bytes do not fit in {size}")
            return bytes(value).ljust(size, b"\0")
        items = list(value)
        if len(items) > t.nelems:
            raise BTFError(f"BTF: {len(items)} elements do not fit in {t.nelems}")
        return b"".join(encode(btf, t.type_id, v) for v in items).ljust(size, b"\0")
    if isinstance(t, T.Struct):
        fields = value._asdict() if isinstance(value, Struct) else dict(value)
        out = bytearray(size)
        known = set()
        _encode_members(btf, t, fields, out, 0, known)
        unknown = set(fields) - known
        if unknown:
            raise BTFError(f"BTF: {t.kind} {t.name} has no member(s) {sorted(unknown)}")
        return bytes(out)
    raise BTFError(f"BTF: cannot encode a value of kind {t.kind}")


def _encode_members(btf, t, fields, out, base_bits, known) -> None:
    for m in t.members:
        if not m.name:
            inner = btf.skip_modifiers(m.type_id)
            if isinstance(inner, T.Struct):
                _encode_members(btf, inner, fields, out, base_bits + m.bit_offset, known)
            continue
        if m.name not in fields:
            continue
        known.add(m.name)
        bit = base_bits + m.bit_offset
        if m.bitfield_size:
            word_bytes = len(out)
            word = int.from_bytes(out, "little")
            mask = ((1 << m.bitfield_size) - 1) << bit
            word = (word & ~mask) | ((int(fields[m.name]) << bit) & mask)
            out[:] = word.to_bytes(word_bytes, "little")
            continue
        data = encode(btf, m.type_id, fields[m.name])
        out[bit // 8:bit // 8 + len(data)] = data


class TypedMap:
    """A live map (VM or kernel) seen through its BTF key and value types."""

    def __init__(self, live_map: Any, btf: T.BTF, key_type_id: int, value_type_id: int):
        self.map = live_map
        self.btf = btf
        self.key_type_id = key_type_id
        self.value_type_id = value_type_id

    def _key(self, key: Any) -> bytes:
        if not self.key_type_id:
            return key if isinstance(key, bytes) else int(key).to_bytes(4, "little")
        return encode(self.btf, self.key_type_id, key)

    def _decode(self, type_id: int, raw: Any) -> Any:
        if not type_id or not isinstance(raw, (bytes, bytearray)):
            return raw
        return decode(self.btf, type_id, raw)

    def __getitem__(self, key: Any) -> Any:
        raw = self.map.lookup(self._key(key))
        if raw is None:
            raise KeyError(key)
        return self._decode(self.value_type_id, raw)

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except (KeyError, LookupError):
            return default
        except Exception as exc:  # a MapError with ENOENT
            if getattr(exc, "errno", None) == 2:
                return default
            raise

    def __setitem__(self, key: Any, value: Any) -> None:
        self.map.update(self._key(key), encode(self.btf, self.value_type_id, value)
                        if self.value_type_id else value)

    def items(self) -> list[tuple[Any, Any]]:
        return [(self._decode(self.key_type_id, k), self._decode(self.value_type_id, v))
                for k, v in self.map.items()]

    def __len__(self) -> int:
        return len(self.items())

    def __iter__(self):
        return (k for k, _ in self.items())


def typed_map(live_map: Any, spec: Any, btf: T.BTF | None) -> Any:
    """``live_map`` decoded through ``spec``'s BTF key/value types (itself without BTF)."""
    if btf is None or not (spec.btf_key_type_id or spec.btf_value_type_id):
        return live_map
    return TypedMap(live_map, btf, spec.btf_key_type_id, spec.btf_value_type_id)
