"""A minimal bpf(2) BPF_PROG_LOAD for tests that only need the kernel's verdict.

Kept independent of ``pybpf.kernel`` on purpose: tests of the kernel engine must not be the
only way other tests reach their oracle.
"""

from __future__ import annotations

import ctypes
import os
import struct

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_BPF = 321  # x86_64
_PROG_TYPES = {"socket_filter": 1, "kprobe": 2, "sched_cls": 3, "xdp": 6}


def kernel_verdict(code: bytes, prog_type: str = "socket_filter") -> tuple[bool, str]:
    """(accepted, verifier log) for raw bytecode loaded as ``prog_type``."""
    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 16)
    attr = struct.pack("<IIQQIIQ", _PROG_TYPES[prog_type], len(code) // 8,
                       ctypes.addressof(insns), ctypes.addressof(lic), 1, len(log),
                       ctypes.addressof(log))
    buf = ctypes.create_string_buffer(attr.ljust(160, b"\0"), 160)
    fd = _libc.syscall(_SYS_BPF, 5, buf, 160)
    if fd >= 0:
        os.close(fd)
        return True, log.value.decode(errors="replace")
    err = ctypes.get_errno()
    return False, f"errno {err}: " + log.value.decode(errors="replace")
