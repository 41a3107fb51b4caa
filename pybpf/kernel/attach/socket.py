"""Socket filters: SO_ATTACH_BPF on a socket (``socket(7)``), detached with SO_DETACH_BPF."""

from __future__ import annotations

import socket as _socket
import struct

from ...errors import KernelError
from ..link import Link

SO_ATTACH_BPF = 50
SO_DETACH_BPF = 27  # same value as SO_DETACH_FILTER


def attach_socket(program, sock: _socket.socket) -> Link:
    """Filter what ``sock`` receives with a socket_filter program (r0 = bytes to keep, 0 drops)."""
    try:
        sock.setsockopt(_socket.SOL_SOCKET, SO_ATTACH_BPF, struct.pack("i", program.fd))
    except OSError as exc:
        raise KernelError(f"SO_ATTACH_BPF: {exc.strerror} (the program must be a "
                          "socket_filter)", errno=exc.errno, command="setsockopt") from None

    def detach() -> None:
        if sock.fileno() >= 0:
            sock.setsockopt(_socket.SOL_SOCKET, SO_DETACH_BPF, struct.pack("i", 0))

    return Link("socket", f"socket fd {sock.fileno()}", detach=detach, program=program)
