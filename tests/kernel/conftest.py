"""Kernel-engine test fixtures: every test must give back every fd it opened."""

from __future__ import annotations

import gc
import os

import pytest


def open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


@pytest.fixture(autouse=True)
def no_fd_leaks():
    """Compare /proc/self/fd before and after each test (closed objects must close their fds)."""
    gc.collect()
    before = open_fds()
    yield
    gc.collect()
    leaked = open_fds() - before
    details = {}
    for fd in leaked:
        try:
            details[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    leaked = {fd for fd in leaked if fd in details}  # listdir's own fd is gone by now
    assert not leaked, f"file descriptors leaked: {details}"


@pytest.fixture(autouse=True)
def nothing_left_pinned():
    """Tests pin under /sys/fs/bpf with a name holding this process id, and must remove what
    they pin (other processes' pins are not this test's business)."""
    tag = str(os.getpid())

    def pins() -> set[str]:
        try:
            return {n for n in os.listdir("/sys/fs/bpf") if n.startswith("pybpf") and tag in n}
        except OSError:
            return set()

    before = pins()
    yield
    left = pins() - before
    assert not left, f"pins left in /sys/fs/bpf: {sorted(left)}"
