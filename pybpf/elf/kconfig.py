"""Values of ``__kconfig`` externs, found the way libbpf finds them.

libbpf (``bpf_object__resolve_externs``) supplies ``LINUX_KERNEL_VERSION`` from ``uname`` and
every ``CONFIG_*`` from ``/proc/config.gz`` (or ``/boot/config-$(uname -r)``); a value it
cannot find is an error unless the extern is ``__weak`` (then it is zero). ``y``/``m``/``n``
become 1/2/0 (libbpf's ``enum libbpf_tristate``), numbers are numbers, quoted strings are
NUL-padded char arrays.
"""

from __future__ import annotations

import os
import re

def kernel_version(release: str | None = None) -> int:
    """KERNEL_VERSION(major, minor, patch) of the running kernel, patch capped at 255."""
    release = release or os.uname().release
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
    if not m:
        return 0
    major, minor, patch = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    return (major << 16) + (minor << 8) + min(patch, 255)


def kernel_config() -> dict[str, str]:
    """CONFIG_* -> raw value of the running kernel's configuration ({} when unavailable);
    read once by the kernel engine's feature probes."""
    from ..kernel.features import kernel_config as read_config
    # the probes also record "# CONFIG_X is not set" (as "n"); libbpf reads only CONFIG_ lines,
    # so an unset option stays absent (an error for a non-__weak extern)
    return {key: value for key, value in read_config().items() if value != "n"}


def encode_value(name: str, raw: str | int | bytes, size: int, is_char_array: bool) -> bytes:
    """Bytes of one kconfig value for a variable of ``size`` bytes."""
    if isinstance(raw, bytes):
        return raw[:size].ljust(size, b"\0")
    if isinstance(raw, int):
        return (raw & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    if is_char_array:
        text = raw[1:-1] if raw.startswith('"') and raw.endswith('"') else raw
        return text.encode()[:size - 1].ljust(size, b"\0")
    tristate = {"y": 1, "m": 2, "n": 0}
    if raw in tristate:
        value = tristate[raw]
    else:
        try:
            value = int(raw, 0)
        except ValueError:
            value = 0
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
