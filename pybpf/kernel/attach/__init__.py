"""Attach programs to kernel hooks; every function returns a :class:`pybpf.kernel.link.Link`.

One module per kind of hook, like cilium/ebpf's ``link`` package: :mod:`.socket`
(SO_ATTACH_BPF), :mod:`.xdp` and :mod:`.tc` (BPF_LINK_CREATE on an interface), :mod:`.cgroup`,
:mod:`.tracepoint` (perf event + link, and raw tracepoints), :mod:`.uprobe` (offset from the ELF
symbol), :mod:`.perf_event` (software events at a frequency), :mod:`.kprobe` (refused with the
missing kernel option when the kernel lacks kprobes). :func:`attach` picks by program type.
"""

from __future__ import annotations

from ...errors import UsageError
from ..link import Link
from .cgroup import attach_cgroup
from .kprobe import attach_kprobe
from .perf_event import attach_perf_event
from .socket import attach_socket
from .tc import attach_tcx
from .tracepoint import attach_raw_tracepoint, attach_tracepoint
from .uprobe import attach_uprobe, symbol_offset
from .xdp import attach_xdp

__all__ = ["attach", "attach_cgroup", "attach_kprobe", "attach_perf_event", "attach_socket",
           "attach_tcx", "attach_raw_tracepoint", "attach_tracepoint", "attach_uprobe",
           "attach_xdp", "symbol_offset", "Link"]


def attach(program, target: str, **options) -> Link:
    """Attach by program type; ``target`` is what that hook is named by:

    xdp / sched_cls: an interface name (``"veth0"``; ``sched_cls`` takes
    ``direction="ingress"|"egress"``); tracepoint: ``"category:name"``; raw_tracepoint: the
    tracepoint name; kprobe: a kernel function; uprobe: ``"/path/binary:symbol"`` (kprobe-type
    programs are uprobes when the target has a path); perf_event: a software event name
    (``cpu-clock``); cgroup_*: a cgroup directory.
    """
    kind = program.prog_type
    if kind == "xdp":
        return attach_xdp(program, target, **options)
    if kind == "sched_cls":
        return attach_tcx(program, target, **options)
    if kind == "tracepoint":
        category, _, name = target.partition(":")
        return attach_tracepoint(program, category, name)
    if kind == "raw_tracepoint":
        return attach_raw_tracepoint(program, target)
    if kind == "kprobe":
        if "/" in target:
            path, _, symbol = target.rpartition(":")
            return attach_uprobe(program, path, symbol, **options)
        return attach_kprobe(program, target, **options)
    if kind == "perf_event":
        return attach_perf_event(program, target, **options)
    if kind.startswith("cgroup"):
        return attach_cgroup(program, target, **options)
    raise UsageError(f"pybpf attach does not know how to attach {kind} programs "
                     "(socket filters attach to a socket with attach_socket)")
