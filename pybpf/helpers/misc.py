"""String helpers: ``bpf_strncmp`` and ``bpf_snprintf`` (kernel/bpf/helpers.c).

``bpf_loop`` lives with the engine-facing helpers in :mod:`.basic`. Formatting reuses
:func:`.basic.format_printk` (the kernel's ``bstr_printf`` conversions); the format checks
(``bpf_bprintf_prepare``: the conversions BPF allows, one u64 per conversion) and the return
value (the length the whole output would have, NUL included) are the kernel's.
"""

from __future__ import annotations

import re

from . import helper
from .basic import format_printk

M64 = (1 << 64) - 1
EINVAL = 22
MAX_BPF_FUNC_VARARGS = 12

#: a conversion bpf_bprintf_prepare accepts: flags, width, then %c %s %p.. or an integer
_CONVERSION = re.compile(rb"%(?:%|[-+ 0]*(?:[1-9]\d*)?(?:(?:ll|l)?[diuxX]|[cs]|p[a-zA-Z0-9]*))")


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
        if m.group(0) != b"%%":
            count += 1
        pos = m.end()


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
    text = format_printk(env, fmt, args).encode()
    if out_size:
        env.write(out, text[: out_size - 1] + b"\0")
    return len(text) + 1
