"""``bpf_strncmp``'s constant-string argument (ARG_PTR_TO_CONST_STR): a read-only map value at a
constant offset holding a NUL-terminated string. Each program of a clang-compiled fixture gets
the kernel's verdict (libbpf-style load of the object by pybpf's kernel engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpf.elf import load_object
from pybpf.errors import KernelError
from pybpf.pytest_plugin import compile_c, find_clang
from pybpf.verifier import verify

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"
NAMES = ["rodata_string", "writable_string", "stack_string", "unterminated_string",
         "variable_offset_string"]


@pytest.fixture(scope="module")
def obj(tmp_path_factory):
    if find_clang() is None:
        pytest.skip("clang is not installed")
    return load_object(str(compile_c(HERE / "fixtures" / "const_str.c",
                                     tmp_path_factory.mktemp("const_str"), f"-I{FIXTURES}")))


@pytest.mark.kernel
@pytest.mark.parametrize("name", NAMES)
def test_a_constant_string_argument_gets_the_kernels_verdict(obj, name):
    from pybpf import kernel

    program = obj.programs[name]
    ours = verify(program)
    try:
        with kernel.load_program(program, log_level=1):
            accepted, log = True, ""
    except KernelError as exc:
        accepted, log = False, exc.log or str(exc)
    assert ours.accepted == accepted, (name, ours.error, log[-400:])
    if not accepted:
        assert ours.error in log, (ours.error, log[-400:])


def test_the_fixture_has_accepted_and_rejected_string_arguments(obj):
    verdicts = {name: verify(obj.programs[name]).accepted for name in NAMES}
    assert verdicts["rodata_string"] and not verdicts["writable_string"]
