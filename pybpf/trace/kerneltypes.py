"""Kernel types in scripts: ``(struct task_struct *)curtask``, ``$task->real_parent->pid``,
``args->rqtp->tv_sec`` -- structs, unions and their members as the running kernel's BTF
(``/sys/kernel/btf/vmlinux``) lays them out, which is where bpftrace 0.17 takes them from on a
kernel with BTF (it then defines ``BPFTRACE_HAVE_BTF``, and scripts skip their own struct
declarations).

A script value that refers to kernel memory is a 64-bit address whose :class:`SType` carries
the BTF id of what it points at (``btf``); a member that is itself a struct or union is not
read but addressed (``rec``: the value is the member's address), so ``$task->se.cfs_rq`` reads
only the pointer at the end. Members are read with ``bpf_probe_read`` by the compiler.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

from .types import SType

#: C integer spellings of tracepoint fields and casts, by (size, signed)
_POINTER_CTYPE = re.compile(r"^(?:const\s+)?(struct|union)\s+(\w+)\s*\*$")


def _btf():
    from ..btf.parser import load_vmlinux
    return load_vmlinux()


class KernelTypeError(Exception):
    """A type or member the kernel's BTF does not have (the compiler adds the script place)."""


def record_id(kind: str, name: str) -> int:
    """The BTF id of ``struct NAME`` / ``union NAME``."""
    try:
        found = _btf().find(name, kind)
    except Exception as exc:  # noqa: BLE001 - no readable kernel BTF
        raise KernelTypeError(f"kernel types need the kernel's BTF ({exc})") from None
    complete = [t for t in found if getattr(t, "members", None) or getattr(t, "size", 0)]
    if not complete:
        raise KernelTypeError(f"the kernel's BTF has no {kind} {name}")
    return complete[0].id


def record_size(kind: str, name: str) -> int:
    return _btf().sizeof(record_id(kind, name))


def pointer_to(ctype: str) -> int:
    """The BTF id a tracepoint field such as ``struct __kernel_timespec *`` points at, or 0."""
    m = _POINTER_CTYPE.match(ctype.strip())
    if not m:
        return 0
    try:
        return record_id(m.group(1), m.group(2))
    except KernelTypeError:
        return 0


def pointer_type(btf_id: int) -> SType:
    """A pointer to the type ``btf_id``."""
    return SType("int", 8, False, btf=btf_id)


def type_name(btf_id: int) -> str:
    t = _btf()[btf_id]
    if t.kind == "array":
        return f"{type_name(t.type_id)}[{t.nelems}]"
    return f"{t.kind} {t.name}" if t.kind in ("struct", "union") else (t.name or t.kind)


def member(record: int, name: str) -> tuple[int, int, SType]:
    """(byte offset, bytes to read, type) of member ``name`` of the struct or union
    ``record``; members of anonymous structs and unions are found as C finds them."""
    btf = _btf()
    found = _find_member(btf, record, name, 0)
    if found is None:
        raise KernelTypeError(f"{type_name(record)} has no member '{name}'")
    bit_offset, type_id, bitfield = found
    if bitfield or bit_offset % 8:
        raise KernelTypeError(f"{type_name(record)}.{name} is a bit field, which scripts "
                              "cannot read yet")
    return (bit_offset // 8, *value_type(type_id, f"{type_name(record)}.{name}"))


def _find_member(btf, record: int, name: str, base: int):
    t = btf.skip_modifiers(record)
    for m in getattr(t, "members", ()):
        if m.name == name:
            return base + m.bit_offset, m.type_id, m.bitfield_size
        if not m.name:  # an anonymous struct or union: its members are the outer one's
            inner = _find_member(btf, m.type_id, name, base + m.bit_offset)
            if inner is not None:
                return inner
    return None


def element(pointee: int) -> tuple[int, int, SType]:
    """(stride, bytes to read, type) of ``p[i]`` for a pointer to BTF type ``pointee``."""
    return (_btf().sizeof(pointee), *value_type(pointee, type_name(pointee)))


def array_length(array: int) -> int:
    return _btf().skip_modifiers(array).nelems


def array_element(array: int) -> tuple[int, int, SType] | None:
    """The same for ``a[i]`` of an array member (``array``: its BTF id), or None when
    ``array`` is not an array (a struct member is not indexed)."""
    t = _btf().skip_modifiers(array)
    if t.kind != "array":
        return None
    return element(t.type_id)


#: C integer types a tracepoint field may point at: (size, signed)
_C_INTS = {"char": (1, True), "unsigned char": (1, False), "u8": (1, False), "s8": (1, True),
           "__u8": (1, False), "short": (2, True), "unsigned short": (2, False),
           "u16": (2, False), "__u16": (2, False), "int": (4, True), "unsigned int": (4, False),
           "u32": (4, False), "__u32": (4, False), "s32": (4, True), "pid_t": (4, True),
           "long": (8, True), "unsigned long": (8, False), "u64": (8, False),
           "__u64": (8, False), "s64": (8, True), "size_t": (8, False), "loff_t": (8, True)}


def ctype_element(ctype: str) -> tuple[int, int, SType] | None:
    """(stride, bytes to read, type) of ``field[i]`` for a tracepoint field of C type
    ``ctype`` (``const char *const *``: 8-byte pointers), or None when it is no pointer
    to something a script can read."""
    text = ctype.strip()
    if not text.endswith("*"):
        return None
    inner = re.sub(r"\bconst\b|\bvolatile\b", " ", text[:-1]).strip()
    inner = " ".join(inner.split())
    if inner.endswith("*"):
        return 8, 8, SType("int", signed=False)
    if inner in _C_INTS:
        size, signed = _C_INTS[inner]
        return size, size, SType("int", signed=signed, width=size)
    target = pointer_to(text)
    return element(target) if target else None


def value_type(type_id: int, what: str) -> tuple[int, SType]:
    """(bytes to read, script type) of a value of BTF type ``type_id``: an integer (enums and
    pointers too; held in 64 bits), a string (a char array), or a struct/union by its
    address (nothing to read)."""
    btf = _btf()
    t = btf.skip_modifiers(type_id)
    if t.kind == "int":
        return t.size, SType("int", signed=bool(t.encoding & 1), width=t.size)
    if t.kind in ("enum", "enum64"):
        return t.size, SType("int", signed=bool(getattr(t, "signed", False)), width=t.size)
    if t.kind == "ptr":
        return 8, pointer_type(btf.skip_modifiers(t.type_id).id)
    if t.kind in ("struct", "union"):
        return 0, SType("int", 8, False, btf=t.id, rec=True)
    if t.kind == "array":
        elem = btf.skip_modifiers(t.type_id)
        if elem.kind == "int" and elem.size == 1:
            return t.nelems, SType("str", t.nelems)
        return 0, SType("int", 8, False, btf=t.id, rec=True)   # indexed: array_element()
    raise KernelTypeError(f"{what} is a {t.kind}, which scripts cannot read")


# --- constants: macros and enumerators -------------------------------------------------------

def constant(name: str, macros: dict[str, str], includes: list[str]) -> tuple[int, SType]:
    """The value of the C constant ``name``: a ``#define`` of the script, a macro of the
    headers it ``#include``-s (read with ``clang -E -dM``, as bpftrace reads them through
    clang), or an enumerator of the kernel's BTF (``SKB_DROP_REASON_NOT_SPECIFIED``)."""
    value = _macro_value(name, macros)
    if value is None and includes:
        value = _macro_value(name, {**header_macros(tuple(includes)), **macros})
    if value is not None:
        return value, SType("int")
    try:
        found = _btf().enumerator(name)
    except Exception:  # noqa: BLE001 - no kernel BTF: not an enumerator then
        found = None
    if found is not None:
        value, enum = found
        return value, SType("int", signed=bool(enum.signed), width=enum.size)
    raise KernelTypeError(f"unknown identifier '{name}' (neither a macro of the script or "
                          "its #includes nor an enumerator of the kernel's BTF)")


_INT_LITERAL = re.compile(r"^\(*\s*(-?(?:0[xX][0-9a-fA-F]+|\d+))[uUlL]*\s*\)*$")


def _macro_value(name: str, table: dict[str, str], depth: int = 0) -> int | None:
    """An object-like macro's integer value, following macros defined as other macros."""
    text = table.get(name)
    if text is None or depth > 16:
        return None
    text = text.strip()
    m = _INT_LITERAL.match(text)
    if m:
        return int(m.group(1), 0)
    inner = text.strip("() ")
    if re.fullmatch(r"[A-Za-z_]\w*", inner):
        return _macro_value(inner, table, depth + 1)
    return None


@functools.lru_cache(maxsize=None)
def header_macros(includes: tuple[str, ...]) -> dict[str, str]:
    """Object-like macros of ``#include <...>``-d system headers; empty without clang."""
    clang = next((shutil.which(c) for c in ("clang", "clang-19", "clang-18", "clang-17",
                                           "clang-16", "clang-15", "clang-14")
                  if shutil.which(c)), None)
    if clang is None:
        return {}
    source = "".join(f"#include <{h}>\n" for h in includes)
    try:
        out = subprocess.run([clang, "-E", "-dM", "-x", "c", "-"], input=source,
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return {}
    macros = {}
    for line in out.stdout.splitlines():
        m = re.match(r"#define ([A-Za-z_]\w*) (.*)$", line)
        if m:
            macros[m.group(1)] = m.group(2)
    return macros

