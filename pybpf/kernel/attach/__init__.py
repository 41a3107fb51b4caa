"""Attach programs to kernel hooks; every function returns a :class:`pybpf.kernel.link.Link`.

One module per kind of hook, like cilium/ebpf's ``link`` package: :mod:`.socket`
(SO_ATTACH_BPF), :mod:`.xdp` and :mod:`.tc` (BPF_LINK_CREATE on an interface), :mod:`.cgroup`,
:mod:`.tracepoint` (perf event + link, and raw tracepoints), :mod:`.uprobe` (offset from the ELF
symbol), :mod:`.perf_event` (software events at a frequency), :mod:`.kprobe` (refused with the
missing kernel option when the kernel lacks kprobes). :func:`attach` picks by program type.
"""

from __future__ import annotations

import importlib

from ...errors import UsageError
from ..link import Link

#: each attach function by its module, imported on first use (PEP 562): a tracepoint does
#: not pay for the socket, interface or ELF modules
_HOMES = {
    "attach_cgroup": "cgroup", "attach_kprobe": "kprobe", "attach_perf_event": "perf_event",
    "attach_socket": "socket", "attach_tcx": "tc", "attach_raw_tracepoint": "tracepoint",
    "attach_tracepoint": "tracepoint", "attach_uprobe": "uprobe", "symbol_offset": "uprobe",
    "attach_xdp": "xdp",
}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


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
        return __getattr__("attach_xdp")(program, target, **options)
    if kind == "sched_cls":
        return __getattr__("attach_tcx")(program, target, **options)
    if kind == "tracepoint":
        category, _, name = target.partition(":")
        return __getattr__("attach_tracepoint")(program, category, name)
    if kind == "raw_tracepoint":
        return __getattr__("attach_raw_tracepoint")(program, target)
    if kind == "kprobe":
        if "/" in target:
            path, _, symbol = target.rpartition(":")
            return __getattr__("attach_uprobe")(program, path, symbol, **options)
        return __getattr__("attach_kprobe")(program, target, **options)
    if kind == "perf_event":
        return __getattr__("attach_perf_event")(program, target, **options)
    if kind.startswith("cgroup"):
        return __getattr__("attach_cgroup")(program, target, **options)
    raise UsageError(f"pybpf attach does not know how to attach {kind} programs "
                     "(socket filters attach to a socket with attach_socket)")
