"""Tie a program to an open perf event: a BPF_LINK_CREATE perf link (5.15+), else the old
PERF_EVENT_IOC_SET_BPF ioctl. Either way the returned Link owns the perf event fd."""

from __future__ import annotations

from ...errors import KernelError
from .. import perf
from ..link import Link, link_create


def perf_link(program, pfd: int, kind: str, target: str, extra_fds: list[int] = ()) -> Link:
    try:
        fd = link_create(program.fd, pfd, "perf_event")
    except KernelError as exc:
        if exc.errno not in (22, 95):  # EINVAL/EOPNOTSUPP: kernel without perf links
            for f in [pfd, *extra_fds]:
                perf.os.close(f)
            raise KernelError(f"attach {kind} {target}: {exc}", errno=exc.errno,
                              command=exc.command) from None
        try:
            perf.ioctl(pfd, perf.IOC_SET_BPF, program.fd)
            perf.ioctl(pfd, perf.IOC_ENABLE, 0)
        except OSError as err:
            for f in [pfd, *extra_fds]:
                perf.os.close(f)
            raise KernelError(f"attach {kind} {target}: {err.strerror}", errno=err.errno,
                              command="PERF_EVENT_IOC_SET_BPF") from None
        return Link(kind, target, fds=[*extra_fds, pfd],
                    detach=lambda: perf.ioctl(pfd, perf.IOC_DISABLE, 0), program=program)
    return Link(kind, target, fd=fd, fds=[*extra_fds, pfd], program=program)
