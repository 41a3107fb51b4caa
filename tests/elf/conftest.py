"""Shared helpers for the object-file tests: the fixture corpus, compiled once per session,
and the references (llvm-objdump-19, bpftool) these tests compare against."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from pybpf.pytest_plugin import compile_c, find_clang

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"
#: every C fixture (tests/fixtures/*.c)
FIXTURES = sorted(p.stem for p in FIXTURES_DIR.glob("*.c"))
#: fixtures libbpf (and so bpftool) refuses: legacy "maps" sections are gone from libbpf v1
NOT_FOR_LIBBPF = {"legacy_maps"}
BPFTOOL = shutil.which("bpftool")


@pytest.fixture(scope="session")
def fixture_objects(tmp_path_factory):
    """name -> path of the compiled fixture (skips when clang is missing)."""
    if find_clang() is None:
        pytest.skip("clang is not installed")
    out = tmp_path_factory.mktemp("fixtures")
    cache: dict[str, Path] = {}

    class Objects:
        def __getitem__(self, name: str) -> Path:
            if name not in cache:
                cache[name] = compile_c(FIXTURES_DIR / f"{name}.c", out)
            return cache[name]

    return Objects()


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, **kw)


@contextlib.contextmanager
def bpftool_loadall(obj: Path):
    """Load an object with bpftool (libbpf) and pin its programs; yields the pin directory."""
    if not BPFTOOL:
        pytest.skip("bpftool is not installed")
    pin = Path("/sys/fs/bpf") / f"pybpf-test-{uuid.uuid4().hex[:10]}"
    try:
        run([BPFTOOL, "prog", "loadall", str(obj), str(pin), "pinmaps", str(pin / "maps")])
    except subprocess.CalledProcessError as exc:
        raise AssertionError(f"bpftool prog loadall {obj} failed: {exc.stderr}") from None
    try:
        yield pin
    finally:
        shutil.rmtree(pin, ignore_errors=True)


def bpftool_json(*args: str):
    return json.loads(run([BPFTOOL, "--json", *args]).stdout)
