"""Shared test configuration: the ``kernel`` and ``llvm`` markers skip cleanly where the
reference they need (bpf(2), llvm-mc-19/llvm-objdump-19) is not available here."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest
from hypothesis import Phase, settings

# `pytest --hypothesis-profile=no-shrink`: report failures without minimising them (a quick
# survey of what fails; the default profile shrinks as usual)
settings.register_profile("no-shrink", phases=[Phase.explicit, Phase.reuse, Phase.generate])

ROOT = Path(__file__).resolve().parent.parent
#: ../shared beside the repository (the bpf_conformance data and verifier suites)
SHARED = ROOT.parent / "shared"


@functools.cache
def kernel_available() -> str | None:
    """None when bpf(2) can load and test-run a program here, else why not."""
    try:
        from pybpf.kernel import features
    except ImportError:
        features = None
    if features is not None and hasattr(features, "bpf_unavailable_reason"):
        return features.bpf_unavailable_reason()
    import ctypes
    import struct

    libc = ctypes.CDLL(None, use_errno=True)
    insns = ctypes.create_string_buffer(bytes.fromhex("b7000000000000009500000000000000"))
    lic = ctypes.create_string_buffer(b"GPL")
    attr = ctypes.create_string_buffer(
        struct.pack("<IIQQ", 1, 2, ctypes.addressof(insns), ctypes.addressof(lic)).ljust(160, b"\0"))
    fd = libc.syscall(321, 5, attr, 160)  # x86_64 bpf(BPF_PROG_LOAD)
    if fd < 0:
        return f"bpf(2) not permitted (errno {ctypes.get_errno()})"
    import os
    os.close(fd)
    return None


def pytest_collection_modifyitems(config, items):
    kernel_reason = None
    llvm_missing = not (shutil.which("llvm-mc-19") and shutil.which("llvm-objdump-19"))
    for item in items:
        if "kernel" in item.keywords:
            if kernel_reason is None:
                kernel_reason = kernel_available() or ""
            if kernel_reason:
                item.add_marker(pytest.mark.skip(reason=kernel_reason))
        if "llvm" in item.keywords and llvm_missing:
            item.add_marker(pytest.mark.skip(reason="llvm-mc-19 / llvm-objdump-19 not installed"))


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the repository")
    return SHARED
