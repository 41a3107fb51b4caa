"""Live capture on an AF_PACKET socket with the classic filter attached in the kernel
(SO_ATTACH_FILTER): only matching packets cross into Python -- the 1992 BPF design.

The socket is opened with protocol 0 (it receives nothing), the filter is attached, and only
then is it bound to the interface for all protocols, so no unfiltered packet slips in."""

from __future__ import annotations

import select
import socket
import time
from typing import Iterator, Sequence

from ..cbpf import isa
from ..errors import CaptureError
from .attach import attach_filter
from .pcapfile import Packet

ETH_P_ALL = 0x0003
ARPHRD_LINKTYPES = {1: 1, 772: 1, 776: 101, 65534: 101}   # ether, loopback, sit, none -> RAW


class LiveCapture:
    def __init__(self, interface: str, insns: Sequence[isa.Instruction] | None,
                 snaplen: int = 262144):
        self.interface = interface
        self.snaplen = snaplen
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise CaptureError("live capture needs CAP_NET_RAW (run as root)") from None
        if insns is not None:
            attach_filter(self.sock, insns)
        try:
            self.sock.bind((interface, ETH_P_ALL))
        except OSError as exc:
            self.sock.close()
            raise CaptureError(f"{interface}: {exc.strerror}") from None
        try:
            with open(f"/sys/class/net/{interface}/type") as f:
                hatype = int(f.read())
        except OSError:
            hatype = 1
        self.linktype = ARPHRD_LINKTYPES.get(hatype, 1)

    def packets(self, timeout: float | None = None) -> Iterator[Packet]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if wait == 0.0:
                return
            ready, _, _ = select.select([self.sock], [], [], wait)
            if not ready:
                return
            data, _addr = self.sock.recvfrom(self.snaplen)
            now = time.time_ns()
            yield Packet(now // 1_000_000_000, now % 1_000_000_000, data, len(data))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
