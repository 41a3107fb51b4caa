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
