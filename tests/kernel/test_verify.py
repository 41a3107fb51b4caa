"""The kernel's verdict in ``pybpf verify --json`` shape."""

from __future__ import annotations

import errno

import pytest

from pybpf.asm import assemble
from pybpf.kernel.verify import verify

pytestmark = pytest.mark.kernel


def test_an_accepted_program_reports_the_instructions_the_verifier_processed():
    verdict = verify(assemble("r0 = 0\nif r1 == 0 goto +1\nr0 = 1\nexit\n"))
    assert verdict.accepted and verdict.error is None
    assert verdict.insns_processed >= 4 and "processed" in verdict.log
    assert set(verdict.as_json()) == {"accepted", "error", "insns_processed", "log"}


def test_a_rejected_program_carries_the_kernels_reason_and_log():
    verdict = verify(assemble("r0 = *(u64 *)(r1 + 1000)\nexit\n"))
    assert not verdict.accepted and verdict.errno == errno.EACCES
    assert "invalid bpf_context access" in verdict.error and verdict.error in verdict.log


def test_log_level_two_shows_every_state():
    verdict = verify(assemble("r0 = 0\nexit\n"), log_level=2)
    assert "0: (b7) r0 = 0" in verdict.log
