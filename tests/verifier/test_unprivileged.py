"""--unprivileged: the rules the kernel applies without CAP_BPF/CAP_PERFMON.

The test oracle runs as root, so these cases pair each unprivileged refusal with the kernel's
root verdict on the same program (accepted), showing the rule is the privilege difference.
"""

from __future__ import annotations

import pytest

from pybpf.asm import assemble
from pybpf.verifier import verify

from .oracle import kernel_verdict

CASES = [
    ("r0 = r1\nexit", "R0 leaks addr as return value"),
    ("r0 = *(u64 *)(r10 - 8)\nexit", "invalid read from stack off -8+0 size 8"),
    ("r0 = 0\nl:\nr0 += 1\nif r0 < 4 goto l\nexit", "back-edge from insn 2 to 1"),
    ("call f\nexit\nf:\nr0 = 0\nexit",
     "function calls to other bpf functions are allowed for CAP_BPF and CAP_SYS_ADMIN"),
    ("r0 = 0\nif r1 > r10 goto +1\nr0 = 1\nexit", "R10 pointer comparison prohibited"),
    ("w0 = w1\nexit", "R1 partial copy of pointer"),
    ("*(u64 *)(r10 - 8) = 0\nlock *(u64 *)(r10 - 8) += r1\nr0 = 0\nexit",
     "R1 leaks addr into mem"),
]


@pytest.mark.parametrize("text,message", CASES)
def test_unprivileged_rule_refuses_what_root_may_do(text, message):
    program = assemble(text)
    ours = verify(program, unprivileged=True)
    assert not ours.accepted
    assert ours.error == message
    assert verify(program).accepted


@pytest.mark.kernel
@pytest.mark.parametrize("text,message", CASES)
def test_the_same_programs_are_accepted_for_root_by_the_kernel(text, message):
    assert kernel_verdict(assemble(text), "socket_filter").accepted


def test_unprivileged_size_limit_is_4096_instructions():
    text = "r0 = 0\n" * 4096 + "exit\n"
    result = verify(assemble(text), unprivileged=True)
    assert not result.accepted and result.error_id == "too-large"
