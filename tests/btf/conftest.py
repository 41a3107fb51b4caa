"""BTF tests compare with bpftool (libbpf's own BTF reader and C dumper) when installed."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

import pytest

from tests.elf.conftest import FIXTURES, fixture_objects  # noqa: F401  (shared corpus fixture)

BPFTOOL = shutil.which("bpftool")


@functools.cache
def bpftool_libbpf_version() -> tuple[int, int]:
    out = subprocess.run([BPFTOOL, "version"], capture_output=True, text=True).stdout
    m = re.search(r"libbpf v(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def bpftool(*args: str) -> str:
    if not BPFTOOL:
        pytest.skip("bpftool is not installed")
    return subprocess.run([BPFTOOL, *args], capture_output=True, text=True, check=True).stdout


__all__ = ["FIXTURES", "bpftool", "bpftool_libbpf_version", "fixture_objects"]
