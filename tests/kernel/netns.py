"""Network namespaces the tests create and remove: a veth pair between two namespaces.

The test process stays in its own namespace and *enters* one only to open sockets or attach
programs there (setns(2) on this thread); a socket keeps the namespace it was created in.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns failed")


class NetNS:
    def __init__(self, name: str):
        self.name = name
        _ip("netns", "add", name)
        _ip("-n", name, "link", "set", "lo", "up")

    @contextlib.contextmanager
    def entered(self):
        """Run the body inside this namespace (this thread only)."""
        home = os.open("/proc/self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            _setns(target)
            yield self
        finally:
            _setns(home)
            os.close(target)
            os.close(home)

    def ip(self, *args: str) -> None:
        _ip("-n", self.name, *args)

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


@contextlib.contextmanager
def veth_pair(prefix: str = "pybpf"):
    """Two namespaces joined by veth: (ns1 with v1 = 10.200.0.1, ns2 with v2 = 10.200.0.2)."""
    tag = f"{prefix}{os.getpid() % 100000}"
    made: list[NetNS] = []
    try:
        ns1 = NetNS(f"{tag}a")
        made.append(ns1)
        ns2 = NetNS(f"{tag}b")
        made.append(ns2)
        _ip("link", "add", "v1", "netns", ns1.name, "type", "veth", "peer", "name", "v2",
            "netns", ns2.name)
        ns1.ip("addr", "add", "10.200.0.1/24", "dev", "v1")
        ns2.ip("addr", "add", "10.200.0.2/24", "dev", "v2")
        ns1.ip("link", "set", "v1", "up")
        ns2.ip("link", "set", "v2", "up")
        yield ns1, ns2
    finally:
        for ns in made:
            ns.delete()
