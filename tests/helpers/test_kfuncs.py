"""kfunc calls (``call`` with src_reg 2, resolved by name through the kernel's BTF) run in the
interpreter and the JIT with the kernel's results (BPF_PROG_TEST_RUN) on generated packets."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from pybpf.elf import load_object
from pybpf.errors import HelperError
from pybpf.jit import JITProgram
from pybpf.pytest_plugin import compile_c, find_clang
from pybpf.vm import Interpreter

pytestmark = pytest.mark.kernel

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"
ENGINES = {"interpreter": lambda p, s: Interpreter(p, prog_type="xdp", sandbox=s),
           "jit": lambda p, s: JITProgram(p, prog_type="xdp", sandbox=s, checked=s)}


@pytest.fixture(scope="module")
def obj(tmp_path_factory):
    if find_clang() is None:
        pytest.skip("clang is not installed")
    return load_object(str(compile_c(HERE / "kfuncs.c", tmp_path_factory.mktemp("kfuncs"),
                                     f"-I{FIXTURES}")))


def kernel_retval(program, packet: bytes) -> int:
    from pybpf import kernel

    with kernel.load_program(program) as kp:
        return kp.test_run(packet).retval


def engines(program):
    """Both engines, sandboxed and (when pybpf's verifier models the kfuncs) verified."""
    from pybpf.verifier import verify

    modes = [True] + ([False] if verify(program).accepted else [])
    return [ENGINES[name](program, s) for name in ENGINES for s in modes]


@settings(max_examples=15, deadline=None)
@given(st.binary(min_size=50, max_size=50))
def test_a_bpf_for_style_loop_over_packet_bytes_matches_the_kernel(obj, payload):
    program = obj.programs["sum_payload"]
    packet = bytes(14) + payload
    want = kernel_retval(program, packet)
    for engine in engines(program):
        assert engine.run(packet) & 0xFFFFFFFF == want


@pytest.mark.parametrize("start,end", [(0, 0), (0, 5), (-3, 3), (5, 0), (0, 1 << 23),
                                        (-1, (1 << 23) - 1), (-(1 << 31), (1 << 31) - 1),
                                        (100, 1100)])
def test_iterator_ranges_and_their_errors_match_the_kernel(obj, start, end):
    program = obj.programs["range_steps"]
    packet = struct.pack("<4i", 0, start, end, 0) + bytes(48)
    want = kernel_retval(program, packet)
    for engine in engines(program):
        assert engine.run(packet) & 0xFFFFFFFF == want, (start, end)
    # and the interpreter's stepping path (pybpf run --trace)
    stepped = Interpreter(program, prog_type="xdp", sandbox=True).run(packet, stepping=True)
    assert stepped & 0xFFFFFFFF == want


@pytest.mark.parametrize("word", [0, 7, -1, 0x12345678])
def test_a_scalar_kfunc_returns_what_the_kernels_does(obj, word):
    program = obj.programs["scalar_kfunc"]
    packet = struct.pack("<i", word) + bytes(60)
    want = kernel_retval(program, packet)
    for engine in engines(program):
        assert engine.run(packet) & 0xFFFFFFFF == want


def test_rcu_and_preemption_markers_run(obj):
    program = obj.programs["rcu_section"]
    want = kernel_retval(program, bytes(64))
    for engine in engines(program):
        assert engine.run(bytes(64)) & 0xFFFFFFFF == want == 2


def test_a_kfunc_pybpf_lacks_is_refused_by_name():
    from pybpf.btf import load_vmlinux
    from pybpf.program import Program
    from pybpf import isa

    btf_id = next(iter(load_vmlinux().find("bpf_obj_new_impl", "func"))).id
    call = isa.Instruction(isa.JMP | isa.CALL, 0, isa.CALL_KFUNC, 0, btf_id)
    exit_ = isa.Instruction(isa.JMP | isa.EXIT)
    with pytest.raises(HelperError, match="bpf_obj_new_impl .* not implemented"):
        Interpreter(Program([call, exit_]), sandbox=True)
