"""Links: attachments of a program that go away when closed, and at interpreter exit.

A :class:`Link` owns whatever keeps an attachment alive -- a bpf link fd (``BPF_LINK_CREATE``,
``BPF_RAW_TRACEPOINT_OPEN``), a perf event fd, or a socket option -- plus the detach action for
attachments that are not fds. Closing is idempotent and registered with :mod:`weakref.finalize`,
so a link that is garbage-collected or still open at exit is detached too (cilium/ebpf's
``link.Link`` and libbpf's ``bpf_link`` follow the same idea: the object *is* the attachment).
"""

from __future__ import annotations

import ctypes
import errno
import weakref
from typing import Callable, Iterator

from ..errors import KernelError
from . import syscall, uapi
from .attrs import GetIdAttr, InfoAttr, LinkCreateAttr, LinkDetachAttr, LinkInfo, LinkUpdateAttr


def _release(fds: list[int], actions: list[Callable[[], None]]) -> None:
    for action in actions:
        try:
            action()
        except Exception:  # detaching from something already gone is fine
            pass
    for fd in reversed(fds):
        syscall.close(fd)


class LinkInformation:
    """``bpftool link show`` for one link. (A plain class with a dataclass's methods: links
    are on ``pybpf trace``'s start-up path, which does not import :mod:`dataclasses`.)"""

    __slots__ = ("id", "type", "prog_id")

    def __init__(self, id: int, type: str, prog_id: int):  # noqa: A002 - bpftool's names
        self.id, self.type, self.prog_id = id, type, prog_id

    def __eq__(self, other) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.id, self.type, self.prog_id) == (other.id, other.type, other.prog_id)

    def __repr__(self) -> str:
        return f"LinkInformation(id={self.id!r}, type={self.type!r}, prog_id={self.prog_id!r})"


class Link:
    """One attachment. ``fd`` is the bpf link fd when there is one (pin/update/info need it)."""

    def __init__(self, kind: str, target: str, *, fd: int | None = None,
                 fds: list[int] | None = None, detach: Callable[[], None] | None = None,
                 program=None):
        self.kind = kind
        self.target = target
        self.fd = fd
        self.program = program  # keeps the program object (and its fd) alive while attached
        owned = list(fds or [])
        if fd is not None and fd not in owned:
            owned.append(fd)
        self._closer = weakref.finalize(self, _release, owned, [detach] if detach else [])

    def close(self) -> None:
        """Detach (idempotent)."""
        self._closer()

    detach = close

    @property
    def closed(self) -> bool:
        return not self._closer.alive

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Link {self.kind} {self.target}{' closed' if self.closed else ''}>"

    def _need_fd(self, what: str) -> int:
        if self.fd is None:
            raise KernelError(f"a {self.kind} attachment is not a bpf link: it cannot {what}")
        return self.fd

    def pin(self, path: str) -> None:
        """Pin the link in bpffs: the attachment then outlives this process until unpinned."""
        from .maps import obj_pin

        obj_pin(self._need_fd("be pinned"), path)

    def update(self, program) -> None:
        """Swap the attached program atomically (``BPF_LINK_UPDATE``)."""
        attr = LinkUpdateAttr(link_fd=self._need_fd("be updated"), new_prog_fd=program.fd)
        syscall.bpf(uapi.Cmd.LINK_UPDATE, attr)
        self.program = program

    def info(self) -> LinkInformation:
        return link_info(self._need_fd("be described"))


def link_create(prog_fd: int, target_fd: int, attach_type: str | int, flags: int = 0,
                **target) -> int:
    """``BPF_LINK_CREATE``; ``target`` fills the attach-type specific union, e.g.
    ``perf_event={"bpf_cookie": 1}``."""
    attr = LinkCreateAttr(prog_fd=prog_fd, target_fd=target_fd,
                          attach_type=uapi.attach_type(attach_type), flags=flags)
    for part, fields in target.items():
        sub = getattr(attr.target, part)
        for name, value in fields.items():
            setattr(sub, name, value)
    return syscall.bpf(uapi.Cmd.LINK_CREATE, attr)


def link_info(fd: int) -> LinkInformation:
    info = LinkInfo()
    syscall.bpf(uapi.Cmd.OBJ_GET_INFO_BY_FD,
                InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info)))
    try:
        kind = uapi.LinkType(info.type).name.lower()
    except ValueError:
        kind = f"type{info.type}"
    return LinkInformation(info.id, kind, info.prog_id)


def link_detach(fd: int) -> None:
    """Force-detach a link (``BPF_LINK_DETACH``) even if other fds or pins hold it."""
    try:
        syscall.bpf(uapi.Cmd.LINK_DETACH, LinkDetachAttr(link_fd=fd))
    except KernelError as exc:
        if exc.errno != errno.ENOLINK:
            raise


def iter_link_ids() -> Iterator[int]:
    from .maps import _iter_ids

    yield from _iter_ids(uapi.Cmd.LINK_GET_NEXT_ID)


def link_from_id(link_id: int) -> int:
    return syscall.bpf(uapi.Cmd.LINK_GET_FD_BY_ID, GetIdAttr(start_id=link_id))
