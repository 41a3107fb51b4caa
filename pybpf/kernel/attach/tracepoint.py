"""Tracepoints (a perf event of type TRACEPOINT carrying the program) and raw tracepoints
(BPF_RAW_TRACEPOINT_OPEN, whose fd is the link)."""

from __future__ import annotations

import ctypes

from ...errors import KernelError
from .. import perf, syscall, uapi
from ..attrs import RawTracepointOpenAttr
from ..link import Link
from ._perf_link import perf_link


def attach_tracepoint(program, category: str, name: str) -> Link:
    """Run a tracepoint program on every hit of ``category:name`` (all CPUs, all tasks)."""
    attr = perf.PerfEventAttr(type=perf.TYPE_TRACEPOINT, config=perf.tracepoint_id(category, name),
                              sample_period=1, wakeup_events=1)
    pfd = perf.perf_event_open(attr, pid=-1, cpu=0, what=f"tracepoint {category}:{name}")
    return perf_link(program, pfd, "tracepoint", f"{category}:{name}")


def attach_raw_tracepoint(program, name: str) -> Link:
    buf = ctypes.create_string_buffer(name.encode())
    try:
        fd = syscall.bpf(uapi.Cmd.RAW_TRACEPOINT_OPEN,
                         RawTracepointOpenAttr(name=ctypes.addressof(buf), prog_fd=program.fd))
    except KernelError as exc:
        raise KernelError(f"attach raw tracepoint {name}: {exc}", errno=exc.errno,
                          command=exc.command) from None
    return Link("raw_tracepoint", name, fd=fd, program=program)
