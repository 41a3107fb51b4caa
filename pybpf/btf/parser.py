"""Parse ``.BTF``, ``.BTF.ext`` and the kernel's ``/sys/kernel/btf/vmlinux``.

Follows the kernel's ``Documentation/bpf/btf.rst`` (sections 2 and 4.2). Parsing walks the
type section once to find where each type starts (the kernel's btf_check_all_metas does the
same pass) and validates lengths; each type is decoded into a dataclass only when asked for.
That keeps the ~6 MB vmlinux blob fast (tens of milliseconds) and is cached per file.

``.BTF.ext`` carries, per ELF section, func_info (which BTF FUNC starts at which
instruction), line_info (source file, line and column of an instruction) and CO-RE
relocation records. Offsets in an object file are byte offsets inside the section.
"""

from __future__ import annotations

import os
import struct
from array import array
from dataclasses import dataclass, field

from ..errors import BTFError
from . import types as T

BTF_MAGIC = 0xEB9F
_HEADER = struct.Struct("<HBBIIIII")
_EXT_HEADER = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")
VMLINUX = "/sys/kernel/btf/vmlinux"
MAX_TYPES = 1 << 20

# bytes of kind-specific data after the 12-byte header: (fixed, per vlen item)
_EXTRA = {
    0: None, 1: (4, 0), 2: (0, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 7: (0, 0),
    8: (0, 0), 9: (0, 0), 10: (0, 0), 11: (0, 0), 12: (0, 0), 13: (0, 8), 14: (4, 0),
    15: (0, 12), 16: (0, 0), 17: (4, 0), 18: (0, 0), 19: (0, 12),
}


class Strings:
    """The string section: NUL-terminated names looked up by offset."""

    def __init__(self, data: bytes):
        self.data = data
        self._cache: dict[int, str] = {}
        self._all_done = False

    def all(self) -> dict[int, str]:
        """Every string that starts right after a NUL, by offset (one split of the section)."""
        if not self._all_done:
            off = 0
            cache = self._cache
            for raw in self.data.split(b"\0"):
                if off not in cache:
                    cache[off] = raw.decode("utf-8", "replace")
                off += len(raw) + 1
            self._all_done = True
        return self._cache

    def get(self, offset: int) -> str:
        s = self._cache.get(offset)
        if s is None:
            data = self.data
            if not 0 <= offset < len(data):
                raise BTFError(f"BTF: string offset {offset} outside the string section "
                               f"({len(data)} bytes)")
            end = data.find(b"\0", offset)
            if end < 0:
                raise BTFError(f"BTF: string at offset {offset} is not NUL-terminated")
            s = self._cache[offset] = data[offset:end].decode("utf-8", "replace")
        return s


def parse_btf(data: bytes) -> T.BTF:
    """Parse a ``.BTF`` blob. Raises :class:`BTFError` naming the offending offset or type."""
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise BTFError(f".BTF: {len(data)} bytes is too short for the BTF header")
    magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = \
        _HEADER.unpack_from(data)
    if magic != BTF_MAGIC:
        if magic == 0x9FEB:
            raise BTFError(".BTF: big-endian BTF is not supported")
        raise BTFError(f".BTF: bad magic 0x{magic:04x} (expected 0xeb9f)")
    if version != 1:
        raise BTFError(f".BTF: unsupported version {version}")
    if hdr_len < _HEADER.size or hdr_len > len(data):
        raise BTFError(f".BTF: bad header length {hdr_len}")
    types_start = hdr_len + type_off
    strs_start = hdr_len + str_off
    if types_start + type_len > len(data) or strs_start + str_len > len(data):
        raise BTFError(f".BTF: type or string section runs past the end of the data "
                       f"({len(data)} bytes)")
    if type_off % 4:
        raise BTFError(f".BTF: type section offset {type_off} is not 4-byte aligned")
    strings = Strings(data[strs_start:strs_start + str_len])
    if str_len and data[strs_start + str_len - 1] != 0:
        raise BTFError(".BTF: string section does not end with NUL")

    offsets, name_offsets = _walk_types(data, types_start, type_len, str_len)

    def decode(type_id: int) -> T.Type:
        return _decode(data, offsets[type_id], type_id, strings, len(offsets))

    btf = T.BTF(data, decode, len(offsets), name_offsets, strings)
    btf.type_offsets = offsets      # byte offset of each type's header in ``data``
    return btf


# 32-bit words of kind-specific data after the 3-word header: (fixed, per vlen item)
_EXTRA_WORDS = [None if v is None else (v[0] // 4, v[1] // 4) for _, v in sorted(_EXTRA.items())]
_EXTRA_WORDS += [None] * (32 - len(_EXTRA_WORDS))


def _walk_types(data: bytes, start: int, length: int, str_len: int):
    """Offsets and name offsets of every type, validating kinds, lengths and names.

    One pass over a uint32 view (the kernel's btf_check_all_metas does the same walk); it is
    the only per-type work done up front.
    """
    if length % 4:
        raise BTFError(f".BTF: type section length {length} is not a multiple of 4")
    words = memoryview(data)[start:start + length].cast("I")
    total = len(words)
    offsets = array("I", [0])
    name_offsets = array("I", [0])
    add_off, add_name = offsets.append, name_offsets.append
    extra = _EXTRA_WORDS
    w = 0
    count = 0
    while w < total:
        count += 1
        if w + 3 > total:
            raise BTFError(f".BTF: type {count} header truncated at offset {start + 4 * w}")
        name_off = words[w]
        info = words[w + 1]
        spec = extra[(info >> 24) & 0x1F]
        if spec is None:
            raise BTFError(f".BTF: type {count} has unknown kind {(info >> 24) & 0x1F}")
        if name_off >= str_len:
            raise BTFError(f".BTF: type {count} name offset {name_off} outside the "
                           f"string section")
        add_off(start + 4 * w)
        add_name(name_off)
        w += 3 + spec[0] + spec[1] * (info & 0xFFFF)
        if count > MAX_TYPES:
            raise BTFError(".BTF: too many types")
    if w != total:
        raise BTFError(f".BTF: last type (id {count}) runs past the type section")
    return offsets, name_offsets


def _decode(data: bytes, off: int, type_id: int, strings: Strings, count: int) -> T.Type:
    name_off, info, size_or_type = _TYPE.unpack_from(data, off)
    kind = (info >> 24) & 0x1F
    vlen = info & 0xFFFF
    kflag = bool(info >> 31)
    name = strings.get(name_off)
    body = off + 12

    def ref(tid: int, what: str) -> int:
        if tid >= count:
            raise BTFError(f".BTF: type {type_id} ({T.KIND_NAMES[kind]} '{name}'): {what} "
                           f"refers to type {tid}, but there are only {count} types")
        return tid

    if kind == 1:
        (word,) = struct.unpack_from("<I", data, body)
        return T.Int(type_id, name, size_or_type, (word >> 24) & 0xF, word & 0xFF,
                     (word >> 16) & 0xFF)
    if kind == 2:
        return T.Pointer(type_id, name, ref(size_or_type, "pointee"))
    if kind == 3:
        elem, index, nelems = struct.unpack_from("<III", data, body)
        return T.Array(type_id, name, ref(elem, "element"), ref(index, "index"), nelems)
    if kind in (4, 5):
        members = []
        for i in range(vlen):
            m_name, m_type, m_off = struct.unpack_from("<III", data, body + 12 * i)
            if kflag:
                members.append(T.Member(strings.get(m_name), ref(m_type, "member"),
                                        m_off & 0xFFFFFF, m_off >> 24))
            else:
                members.append(T.Member(strings.get(m_name), ref(m_type, "member"), m_off))
        cls = T.Struct if kind == 4 else T.Union
        return cls(type_id, name, size_or_type, members)
    if kind == 6:
        values = []
        for i in range(vlen):
            v_name, v_val = struct.unpack_from("<Ii" if kflag else "<II", data, body + 8 * i)
            values.append(T.EnumValue(strings.get(v_name), v_val))
        return T.Enum(type_id, name, size_or_type, values, kflag)
    if kind == 19:
        values = []
        for i in range(vlen):
            v_name, lo, hi = struct.unpack_from("<III", data, body + 12 * i)
            value = (hi << 32) | lo
            if kflag and value >> 63:
                value -= 1 << 64
            values.append(T.EnumValue(strings.get(v_name), value))
        return T.Enum64(type_id, name, size_or_type, values, kflag)
    if kind == 7:
        return T.Fwd(type_id, name, kflag)
    if kind in (8, 9, 10, 11, 18):
        cls = {8: T.Typedef, 9: T.Volatile, 10: T.Const, 11: T.Restrict, 18: T.TypeTag}[kind]
        return cls(type_id, name, ref(size_or_type, "target"))
    if kind == 12:
        return T.Func(type_id, name, ref(size_or_type, "prototype"),
                      T.FUNC_LINKAGE.get(vlen, str(vlen)))
    if kind == 13:
        params = []
        for i in range(vlen):
            p_name, p_type = struct.unpack_from("<II", data, body + 8 * i)
            params.append(T.Param(strings.get(p_name), ref(p_type, "parameter")))
        return T.FuncProto(type_id, name, ref(size_or_type, "return type"), params)
    if kind == 14:
        (linkage,) = struct.unpack_from("<I", data, body)
        return T.Var(type_id, name, ref(size_or_type, "variable type"),
                     T.VAR_LINKAGE.get(linkage, str(linkage)))
    if kind == 15:
        secinfo = []
        for i in range(vlen):
            v_type, v_off, v_size = struct.unpack_from("<III", data, body + 12 * i)
            secinfo.append(T.VarSecinfo(ref(v_type, "variable"), v_off, v_size))
        return T.Datasec(type_id, name, size_or_type, secinfo)
    if kind == 16:
        return T.Float(type_id, name, size_or_type)
    if kind == 17:
        (component,) = struct.unpack_from("<i", data, body)
        return T.DeclTag(type_id, name, ref(size_or_type, "tagged type"), component)
    raise BTFError(f".BTF: type {type_id} has unknown kind {kind}")


# --- .BTF.ext ---------------------------------------------------------------------------------

@dataclass(slots=True)
class FuncInfo:
    insn_off: int       # byte offset inside the ELF section
    type_id: int        # a BTF FUNC


@dataclass(slots=True)
class LineInfo:
    insn_off: int
    file: str
    line_text: str
    line: int
    column: int
    file_name_off: int = 0   # raw string offsets, as BPF_PROG_LOAD's line_info wants them
    line_off: int = 0

    @property
    def line_col(self) -> int:
        return (self.line << 10) | self.column


# CO-RE relocation kinds (enum bpf_core_relo_kind)
CORE_RELO_KINDS = {
    0: "field_byte_offset", 1: "field_byte_size", 2: "field_exists", 3: "field_signed",
    4: "field_lshift_u64", 5: "field_rshift_u64", 6: "type_id_local", 7: "type_id_target",
    8: "type_exists", 9: "type_size", 10: "enumval_exists", 11: "enumval_value",
    12: "type_matches",
}


@dataclass(slots=True)
class CoreRelo:
    insn_off: int
    type_id: int        # root type in the local BTF
    access: str         # access string, e.g. "0:1:2"
    kind: int           # CORE_RELO_KINDS key

    @property
    def kind_name(self) -> str:
        return CORE_RELO_KINDS.get(self.kind, f"kind{self.kind}")


@dataclass
class BTFExt:
    """Per-section func_info, line_info and CO-RE relocations of an object file."""

    func_info: dict[str, list[FuncInfo]] = field(default_factory=dict)
    line_info: dict[str, list[LineInfo]] = field(default_factory=dict)
    core_relos: dict[str, list[CoreRelo]] = field(default_factory=dict)


def parse_btf_ext(data: bytes, btf: T.BTF) -> BTFExt:
    """Parse ``.BTF.ext``; strings are looked up in ``btf``'s string section."""
    data = bytes(data)
    if len(data) < 24:
        raise BTFError(f".BTF.ext: {len(data)} bytes is too short for its header")
    magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", data)
    if magic != BTF_MAGIC:
        raise BTFError(f".BTF.ext: bad magic 0x{magic:04x} (expected 0xeb9f)")
    if version != 1:
        raise BTFError(f".BTF.ext: unsupported version {version}")
    if hdr_len < 24 or hdr_len > len(data):
        raise BTFError(f".BTF.ext: bad header length {hdr_len}")
    fi_off, fi_len, li_off, li_len = struct.unpack_from("<IIII", data, 8)
    core_off = core_len = 0
    if hdr_len >= 32:
        core_off, core_len = struct.unpack_from("<II", data, 24)
    ext = BTFExt()
    strings = btf.strings

    def func(rec: bytes) -> FuncInfo:
        return FuncInfo(*struct.unpack_from("<II", rec))

    def line(rec: bytes) -> LineInfo:
        insn_off, file_off, line_off, line_col = struct.unpack_from("<IIII", rec)
        return LineInfo(insn_off, strings.get(file_off), strings.get(line_off),
                        line_col >> 10, line_col & 0x3FF, file_off, line_off)

    def core(rec: bytes) -> CoreRelo:
        insn_off, type_id, access_off, kind = struct.unpack_from("<IIII", rec)
        return CoreRelo(insn_off, type_id, strings.get(access_off), kind)

    for what, off, length, min_rec, build, into in (
            ("func_info", fi_off, fi_len, 8, func, ext.func_info),
            ("line_info", li_off, li_len, 16, line, ext.line_info),
            ("CO-RE relocations", core_off, core_len, 16, core, ext.core_relos)):
        if length:
            _parse_info(data, hdr_len + off, length, what, min_rec, build, into, strings)
    return ext


def _parse_info(data, start, length, what, min_rec, build, into, strings) -> None:
    end = start + length
    if end > len(data) or length < 4:
        raise BTFError(f".BTF.ext: {what} runs past the end of the section")
    (rec_size,) = struct.unpack_from("<I", data, start)
    if rec_size < min_rec or rec_size % 4:
        raise BTFError(f".BTF.ext: {what} record size {rec_size} is invalid")
    off = start + 4
    while off < end:
        if off + 8 > end:
            raise BTFError(f".BTF.ext: {what} section header truncated at offset {off}")
        sec_name_off, num = struct.unpack_from("<II", data, off)
        sec_name = strings.get(sec_name_off)
        off += 8
        if num == 0 or off + num * rec_size > end:
            raise BTFError(f".BTF.ext: {what} for section '{sec_name}' has a bad record "
                           f"count {num}")
        records = into.setdefault(sec_name, [])
        for i in range(num):
            records.append(build(data[off:off + rec_size]))
            off += rec_size


# --- the kernel's BTF --------------------------------------------------------------------------

_vmlinux_cache: dict[str, tuple[tuple[int, int], T.BTF]] = {}


def load_vmlinux(path: str = VMLINUX) -> T.BTF:
    """The running kernel's BTF, parsed once per process (keyed by the file's mtime/size)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise BTFError(f"{path}: cannot read the kernel's BTF ({exc.strerror})") from None
    key = (st.st_mtime_ns, st.st_size)
    hit = _vmlinux_cache.get(path)
    if hit and hit[0] == key:
        return hit[1]
    with open(path, "rb") as f:
        btf = parse_btf(f.read())
    _vmlinux_cache[path] = (key, btf)
    return btf
