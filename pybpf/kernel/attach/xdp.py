"""XDP through a bpf link (BPF_LINK_CREATE, attach type XDP): native or generic (skb) mode."""

from __future__ import annotations

import errno

from ...errors import KernelError
from .. import uapi
from ..link import Link, link_create
from ._iface import ifindex

MODES = {"native": uapi.XDP_FLAGS_DRV_MODE, "generic": uapi.XDP_FLAGS_SKB_MODE,
         "skb": uapi.XDP_FLAGS_SKB_MODE, "offload": uapi.XDP_FLAGS_HW_MODE, None: 0}


def attach_xdp(program, interface: str | int, mode: str | None = None) -> Link:
    """Attach an xdp program to ``interface``; ``mode`` native, generic or None (the driver's
    choice: native when it supports XDP)."""
    index = ifindex(interface)
    try:
        fd = link_create(program.fd, index, "xdp", MODES[mode])
    except KernelError as exc:
        hint = {errno.EBUSY: "another XDP program is already attached in that mode",
                errno.EOPNOTSUPP: "the driver has no native XDP: use mode='generic'",
                errno.EINVAL: "is the program of type xdp?"}.get(exc.errno, "")
        raise KernelError(f"attach xdp to {interface}: {exc}{' -- ' + hint if hint else ''}",
                          errno=exc.errno, command=exc.command) from None
    return Link("xdp", f"{interface} ({mode or 'default'} mode)", fd=fd, program=program)
