"""String helpers: ``bpf_strncmp`` and ``bpf_snprintf`` (kernel/bpf/helpers.c).

``bpf_loop`` lives with the engine-facing helpers in :mod:`.basic`. Formatting works on bytes
(a %s argument may hold any byte): the conversions ``bpf_bprintf_prepare`` accepts, one u64
argument per conversion, and the return value (the length the whole output would have, NUL
included) are the kernel's.
"""

from __future__ import annotations

import re

from . import helper

M64 = (1 << 64) - 1
EINVAL = 22
MAX_BPF_FUNC_VARARGS = 12

#: one conversion as bpf_bprintf_prepare accepts it: flags, width, then an integer (with l/ll),
#: a character, a string or a pointer (%p with its suffix)
_CONVERSION = re.compile(rb"%(?:(%)|([-+ 0]*)([1-9]\d*)?"
                         rb"(?:(ll|l)?([diuxX])|([cs])|p([a-zA-Z0-9]*)))")


def _count_conversions(fmt: bytes) -> int | None:
    """Number of arguments ``fmt`` consumes, None when the kernel refuses it."""
    count = 0
    pos = 0
    while True:
        i = fmt.find(b"%", pos)
        if i < 0:
            return count
        m = _CONVERSION.match(fmt, i)
        if m is None:
            return None
        if not m.group(1):
            count += 1
        pos = m.end()


def _pointer(env, suffix: bytes, value: int) -> bytes:
    """%p conversions: %px the raw value; %pI4/%pi4 and %pI6/%pi6 read the address; other
    forms print the value as %px does (the kernel would hash it)."""
    try:
        if suffix[:2] in (b"I4", b"i4"):
            octets = env.read(value, 4)
            fmt = "{:d}" if suffix[:1] == b"I" else "{:03d}"
            return ".".join(fmt.format(o) for o in octets).encode()
        if suffix[:2] in (b"I6", b"i6"):
            raw = env.read(value, 16)
            groups = [raw[i: i + 2].hex() for i in range(0, 16, 2)]
            return (":".join(groups) if suffix[:1] == b"I" else "".join(groups)).encode()
    except Exception:
        return b"(efault)"
    return f"{value & M64:016x}".encode()


def bprintf(env, fmt: bytes, args: list[int]) -> bytes:
    """Format ``fmt`` with u64 ``args`` the way ``bstr_printf`` prints what
    ``bpf_bprintf_prepare`` accepted (integers cut to 32 bits without ``l``), as bytes."""
    out = bytearray()
    pos = 0
    it = iter(args)
    for m in _CONVERSION.finditer(fmt):
        out += fmt[pos: m.start()]
        pos = m.end()
        percent, flags, width, length, integer, other, pointer = m.groups()
        if percent:
            out += b"%"
            continue
        value = next(it, 0)
        spec = b"%" + (flags or b"") + (width or b"")
        if integer:
            bits = 64 if length else 32
            value &= (1 << bits) - 1
            if integer in b"di":
                value -= (1 << bits) if value >> (bits - 1) else 0
                out += (spec + b"d") % value
            else:
                out += (spec + (b"d" if integer == b"u" else integer)) % value
        elif other == b"c":
            out += (spec + b"c") % (value & 0xFF)
        elif other == b"s":
            try:
                text = env.memory.read_cstring(value, 1 << 12)
            except Exception:
                text = b"(efault)"
            out += (spec + b"s") % text
        else:
            out += (spec + b"s") % _pointer(env, pointer or b"", value)
    out += fmt[pos:]
    return bytes(out)


@helper("strncmp", "integer", "ptr_to_mem", "const_size", "ptr_to_const_str")
def strncmp(env, s1, s1_size, s2, *_):
    """Compare at most ``s1_size`` bytes: -1, 0 or 1 (lib/string.c's ``strncmp``)."""
    s1_size &= 0xFFFFFFFF
    a = env.read(s1, s1_size) if s1_size else b""
    b = env.memory.read_cstring(s2, s1_size + 1) + b"\0"
    for i in range(s1_size):
        c1, c2 = a[i], b[i] if i < len(b) else 0
        if c1 != c2:
            return (-1 if c1 < c2 else 1) & M64
        if not c1:
            break
    return 0


@helper("snprintf", "integer", "ptr_to_mem_or_null", "const_size_or_zero", "ptr_to_const_str",
        "ptr_to_mem_or_null", "const_size_or_zero")
def snprintf(env, out, out_size, fmt_ptr, data, data_len):
    """Format into ``out`` (NUL-terminated, truncated to ``out_size``) with u64 arguments read
    from ``data``; returns the untruncated length plus one."""
    out_size &= 0xFFFFFFFF
    data_len &= 0xFFFFFFFF
    if data_len % 8 or data_len > 8 * MAX_BPF_FUNC_VARARGS or (data_len and not data):
        return -EINVAL & M64
    fmt = env.memory.read_cstring(fmt_ptr, 1 << 16)
    args = [int.from_bytes(env.read(data + 8 * i, 8), "little") for i in range(data_len // 8)]
    needed = _count_conversions(fmt)
    if needed is None or needed > len(args):
        return -EINVAL & M64
    text = bprintf(env, fmt, args)
    if out_size:
        env.write(out, text[: out_size - 1] + b"\0")
    return len(text) + 1
