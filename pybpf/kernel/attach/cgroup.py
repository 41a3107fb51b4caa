"""cgroup programs through links on a cgroup v2 directory (BPF_LINK_CREATE)."""

from __future__ import annotations

import os

from ...errors import KernelError, UsageError
from ..link import Link, link_create

#: the attach type a program type gets when none is given
DEFAULT_ATTACH = {"cgroup_skb": "cgroup_inet_ingress", "cgroup_sock": "cgroup_inet_sock_create",
                  "cgroup_device": "cgroup_device", "cgroup_sysctl": "cgroup_sysctl",
                  "cgroup_sock_addr": "cgroup_inet4_connect",
                  "cgroup_sockopt": "cgroup_getsockopt", "sock_ops": "cgroup_sock_ops"}


def attach_cgroup(program, cgroup: str, attach_type: str | None = None) -> Link:
    kind = attach_type or getattr(program.program, "attach_type", None) or \
        DEFAULT_ATTACH.get(program.prog_type)
    if kind is None:
        raise UsageError(f"say which cgroup hook to attach a {program.prog_type} program to")
    try:
        dirfd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise UsageError(f"cannot open cgroup {cgroup}: {exc.strerror}") from None
    try:
        fd = link_create(program.fd, dirfd, kind)
    except KernelError as exc:
        raise KernelError(f"attach {kind} to cgroup {cgroup}: {exc} (a cgroup v2 directory "
                          "is needed)", errno=exc.errno, command=exc.command) from None
    finally:
        os.close(dirfd)
    return Link("cgroup", f"{cgroup} {kind}", fd=fd, program=program)
