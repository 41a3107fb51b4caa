"""bpf_strncmp, bpf_snprintf and bpf_loop in a clang-compiled object (tests/helpers/strings.c)
give the kernel's results (BPF_PROG_TEST_RUN) on generated packets."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from pybpf.elf import load_object
from pybpf.elf.collection import KernelCollection, VMCollection
from pybpf.pytest_plugin import compile_c, find_clang

pytestmark = pytest.mark.kernel

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"
ETH = b"\x02" * 6 + b"\x04" * 6 + b"\x88\xb5"


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    if find_clang() is None:
        pytest.skip("clang is not installed")
    obj = compile_c(HERE / "strings.c", tmp_path_factory.mktemp("strings"), f"-I{FIXTURES}")
    with KernelCollection(load_object(str(obj))) as kc:
        yield kc, VMCollection(load_object(str(obj)))


def same(engines, program: str, packet: bytes) -> None:
    kc, vc = engines
    theirs = kc.programs[program].test_run(packet)
    ours = vc.programs[program].test_run(packet)
    assert (ours.retval, ours.data_out) == (theirs.retval, theirs.data_out)


WORDS = [b"hello\0world\0\0\0\0\0", b"hello world!!!!!", b"help\0" + bytes(11), b"\0" * 16,
         b"hellz" + b"z" * 11, b"\xff" * 16, b"hello\0xxxxxxxxxx", b"Hello" + bytes(11)]


@pytest.mark.parametrize("word", WORDS)
def test_strncmp_orders_strings_like_the_kernel(engines, word):
    same(engines, "compare_words", ETH + word + bytes(30))


@settings(max_examples=15, deadline=None)
@given(st.binary(min_size=16, max_size=16))
def test_strncmp_on_any_bytes_matches_the_kernel(engines, word):
    same(engines, "compare_words", ETH + word + bytes(30))


def numbers(*values: int, text: bytes = b"pybpf\0") -> bytes:
    body = b"".join(struct.pack("<Q", v & (1 << 64) - 1) for v in values)
    return ETH + body.ljust(48, b"\0") + text.ljust(48, b"\0")


@pytest.mark.parametrize("values", [(0, 0, 0, 0, 0), (-1, -1, -1, -1, 65),
                                    (0x80000000, 123456, 0xDEADBEEF, -(1 << 63), 97),
                                    (42, 7, 255, 1 << 40, 0x7F), (-12345, 99999, 16, 3, 33)])
def test_snprintf_formats_numbers_and_strings_like_the_kernel(engines, values):
    same(engines, "format_numbers", numbers(*values))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(-(1 << 63), (1 << 64) - 1), min_size=5, max_size=5),
       st.binary(max_size=40).filter(lambda b: 0 not in b))
def test_snprintf_on_any_arguments_matches_the_kernel(engines, values, text):
    same(engines, "format_numbers", numbers(*values, text=text + b"\0"))


def test_snprintf_truncates_and_reports_the_full_length_like_the_kernel(engines):
    same(engines, "format_truncated", ETH + bytes(40))


@pytest.mark.parametrize("stop_at", [None, 0, 20, 70, 127])
def test_bpf_loop_calls_back_until_told_to_stop_like_the_kernel(engines, stop_at):
    body = bytearray((i * 7) & 0x7F for i in range(150))
    if stop_at is not None:
        body[stop_at] = 0xEE
    same(engines, "loop_until_byte", bytes(body))
