"""Engines run only verified programs unless the caller opts out (``sandbox=True``).

With a program type the verdict is the verifier's for that type (compared here with the
kernel's, which refuses the same programs); without one (R1 = input, R2 = its length) the
program is verified for each input size before its first run of that size.
"""

from __future__ import annotations

import pytest

from pybpf.asm import assemble
from pybpf.errors import UsageError, VerifierError, VMError
from pybpf.jit import JITProgram
from pybpf.vm import Interpreter

# reads the 4-byte word at offset 0 of the input, writes a byte at offset 1
RAW = "r0 = *(u32 *)(r1 + 0)\n*(u8 *)(r1 + 1) = 7\nexit\n"
# reads a socket filter's __sk_buff past its end: refused by the kernel's verifier
BAD_CTX = "r0 = *(u32 *)(r1 + 4096)\nexit\n"
GOOD_CTX = "r0 = *(u32 *)(r1 + 0)\nexit\n"     # skb->len


@pytest.mark.parametrize("engine", [Interpreter, JITProgram])
def test_a_raw_program_is_verified_for_each_input_size_before_it_runs(engine):
    vm = engine(assemble(RAW), sandbox=False)
    assert vm.run(b"\x01\x02\x03\x04") == 0x04030201
    assert vm.run(bytes(8)) == 0
    with pytest.raises(VerifierError) as info:
        vm.run(b"\x01\x02")                   # a 4-byte read of a 2-byte input
    assert info.value.index == 0 and "sandbox" in str(info.value)


@pytest.mark.parametrize("engine", [Interpreter, JITProgram])
def test_a_sandboxed_raw_program_runs_unverified_and_faults_at_run_time(engine):
    vm = engine(assemble(RAW), sandbox=True)
    assert vm.run(b"\x01\x02\x03\x04") == 0x04030201
    with pytest.raises(VMError):
        vm.run(b"\x01\x02")


@pytest.mark.parametrize("engine", [Interpreter, JITProgram])
def test_a_typed_program_the_verifier_rejects_is_refused_at_load(engine):
    with pytest.raises(VerifierError) as info:
        engine(assemble(BAD_CTX), prog_type="socket_filter", sandbox=False)
    assert "invalid bpf_context access off=4096 size=4" in str(info.value)
    # opting out skips the verifier; the context rewriter still refuses the access (VMError)
    with pytest.raises(VMError):
        engine(assemble(BAD_CTX), prog_type="socket_filter", sandbox=True).run(bytes(64))


@pytest.mark.kernel
def test_the_kernel_refuses_what_the_engines_refuse():
    from pybpf import kernel
    from pybpf.errors import KernelError

    with pytest.raises(KernelError) as info:
        kernel.load_program(assemble(BAD_CTX), prog_type="socket_filter", log_level=1)
    assert "invalid bpf_context access off=4096 size=4" in info.value.log
    with kernel.load_program(assemble(GOOD_CTX), prog_type="socket_filter") as kp:
        want = kp.test_run(bytes(64)).retval
    assert Interpreter(assemble(GOOD_CTX), prog_type="socket_filter",
                       sandbox=False).run(bytes(64)) == want
    assert JITProgram(assemble(GOOD_CTX), prog_type="socket_filter", sandbox=False,
                      checked=False).run(bytes(64)) == want


def test_native_code_without_checks_needs_a_verified_program():
    with pytest.raises(UsageError):
        JITProgram(assemble(RAW), sandbox=True, checked=False)
    # verified (per input size): unchecked native code is allowed
    assert JITProgram(assemble(RAW), sandbox=False, checked=False).run(bytes(4)) == 0


def test_a_program_type_the_verifier_does_not_model_needs_the_sandbox():
    with pytest.raises(VerifierError) as info:
        Interpreter(assemble("r0 = 0\nexit\n"), prog_type="uprobe", sandbox=False)
    assert "sandbox" in str(info.value)
    assert Interpreter(assemble("r0 = 0\nexit\n"), prog_type="uprobe",
                       sandbox=True).run(bytes(64)) == 0
