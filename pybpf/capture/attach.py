"""Attach a classic BPF program to a socket (SO_ATTACH_FILTER), the kernel's own checker
deciding; used by live capture and as the reference for :mod:`pybpf.cbpf.checker`."""

from __future__ import annotations

import ctypes
import socket
import struct
from typing import Sequence

from ..cbpf import isa
from ..errors import CaptureError

SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27
SO_LOCK_FILTER = 44


def attach_filter(sock: socket.socket, insns: Sequence[isa.Instruction]) -> None:
    """setsockopt(SOL_SOCKET, SO_ATTACH_FILTER, struct sock_fprog); raises CaptureError
    (with ``errno``) when the kernel refuses the program."""
    code = isa.encode(insns)
    buf = ctypes.create_string_buffer(code, max(len(code), 1))
    fprog = struct.pack("HxxxxxxQ", len(insns), ctypes.addressof(buf))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError as exc:
        err = CaptureError(f"the kernel refused the classic filter: {exc.strerror}")
        err.errno = exc.errno
        raise err from None
    finally:
        del buf


def detach_filter(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)


def kernel_accepts(insns: Sequence[isa.Instruction]) -> bool:
    """Whether SO_ATTACH_FILTER accepts ``insns`` on a fresh UDP socket."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            attach_filter(s, insns)
        except CaptureError as exc:
            if getattr(exc, "errno", None) == 22:
                return False
            raise
    return True
