"""tc programs through tcx links (BPF_LINK_CREATE with TCX_INGRESS / TCX_EGRESS, Linux 6.6+)."""

from __future__ import annotations

from ...errors import KernelError, UsageError
from ..link import Link, link_create
from ._iface import ifindex

DIRECTIONS = {"ingress": "tcx_ingress", "egress": "tcx_egress"}


def attach_tcx(program, interface: str | int, direction: str = "ingress") -> Link:
    """Attach a sched_cls program on ``interface``'s ingress or egress."""
    if direction not in DIRECTIONS:
        raise UsageError(f"tc direction must be ingress or egress, not '{direction}'")
    try:
        fd = link_create(program.fd, ifindex(interface), DIRECTIONS[direction])
    except KernelError as exc:
        raise KernelError(f"attach tc {direction} to {interface}: {exc} (tcx links need "
                          "Linux 6.6 and a sched_cls program)", errno=exc.errno,
                          command=exc.command) from None
    return Link("tcx", f"{interface} {direction}", fd=fd, program=program)
