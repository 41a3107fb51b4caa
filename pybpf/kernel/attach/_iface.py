"""Interface names to indexes with an error that says which namespace was searched."""

from __future__ import annotations

import socket

from ...errors import UsageError


def ifindex(interface: str | int) -> int:
    if isinstance(interface, int):
        return interface
    try:
        return socket.if_nametoindex(interface)
    except OSError:
        raise UsageError(f"no network interface '{interface}' in this network namespace") \
            from None
