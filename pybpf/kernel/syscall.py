"""The one door to the kernel: ``bpf(cmd, attr)``.

Every bpf(2) call in pybpf goes through :func:`bpf` *looked up on this module at call time*
(``syscall.bpf(...)``, never ``from .syscall import bpf``), so a test can replace it with
``monkeypatch.setattr(pybpf.kernel.syscall, "bpf", fake)`` and see every command and attribute
structure pybpf would send. Failures raise :class:`pybpf.errors.KernelError` carrying the errno
(number and name) and the command; loaders add the verifier log. ``EPERM``/``ENOSYS`` on the
commands that create objects become :class:`KernelUnsupported` with one line saying what to do.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os

from ..errors import KernelError, KernelUnsupported
from .uapi import Cmd

#: bpf(2)'s system call number by machine (asm/unistd.h of each architecture)
SYSCALL_NUMBERS = {
    "x86_64": 321, "i386": 357, "i686": 357, "aarch64": 280, "arm64": 280, "armv7l": 386,
    "riscv64": 280, "ppc64le": 361, "ppc64": 361, "s390x": 351, "loongarch64": 280,
    "mips64": 5315,
}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_NR_BPF = SYSCALL_NUMBERS.get(os.uname().machine)

#: commands whose EPERM means "this process may not use bpf(2) at all"
_CREATING = {Cmd.PROG_LOAD, Cmd.MAP_CREATE, Cmd.BTF_LOAD}
#: commands that need CAP_SYS_ADMIN whatever the object (walking and opening by id)
_ADMIN = {Cmd.PROG_GET_NEXT_ID, Cmd.MAP_GET_NEXT_ID, Cmd.LINK_GET_NEXT_ID, Cmd.BTF_GET_NEXT_ID,
          Cmd.PROG_GET_FD_BY_ID, Cmd.MAP_GET_FD_BY_ID, Cmd.LINK_GET_FD_BY_ID,
          Cmd.BTF_GET_FD_BY_ID, Cmd.ENABLE_STATS}

NOT_PERMITTED = ("bpf(2) is not permitted for this process: run as root or grant CAP_BPF "
                 "(with CAP_PERFMON / CAP_NET_ADMIN for tracing and networking programs)")


def errno_name(code: int) -> str:
    return _errno.errorcode.get(code, f"errno {code}")


def raw_bpf(cmd: int, attr: ctypes.Structure) -> int:
    """bpf(cmd, &attr, sizeof(attr)); returns the result or ``-errno`` (never raises)."""
    if _NR_BPF is None:
        return -_errno.ENOSYS
    ret = _libc.syscall(_NR_BPF, ctypes.c_int(int(cmd)), ctypes.byref(attr),
                        ctypes.c_uint(ctypes.sizeof(attr)))
    if ret < 0:
        return -ctypes.get_errno()
    return ret


def error_for(cmd: int, code: int, detail: str = "", log: str = "") -> KernelError:
    """The exception for ``cmd`` failing with ``code``: names the command and the errno."""
    name = Cmd(cmd).name if cmd in Cmd._value2member_map_ else str(cmd)
    text = f"BPF_{name}: {errno_name(code)} ({os.strerror(code)})"
    if detail:
        text = f"{text}: {detail}"
    if code == _errno.EPERM and cmd in _ADMIN:
        return KernelUnsupported(f"BPF_{name} is not permitted for this process: listing and "
                                 "opening BPF objects by id needs root (CAP_SYS_ADMIN)",
                                 errno=code, command=f"BPF_{name}")
    if code == _errno.ENOSYS or (code == _errno.EPERM and cmd in _CREATING and not log):
        exc: KernelError = KernelUnsupported(
            NOT_PERMITTED if code == _errno.EPERM else
            f"bpf(2) is not available on this kernel/machine ({os.uname().machine})",
            errno=code, command=f"BPF_{name}")
        return exc
    return KernelError(text, errno=code, command=f"BPF_{name}", log=log)


def bpf(cmd: int, attr: ctypes.Structure) -> int:
    """Run one bpf(2) command; return its non-negative result or raise :class:`KernelError`."""
    ret = raw_bpf(cmd, attr)
    if ret < 0:
        raise error_for(cmd, -ret)
    return ret


def close(fd: int) -> None:
    """Close an fd the kernel gave us, ignoring one that is already gone."""
    try:
        os.close(fd)
    except OSError:
        pass
