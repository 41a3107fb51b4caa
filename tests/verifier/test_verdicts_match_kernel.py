"""Every hand-written rule case gets the same verdict from pybpf as from the running kernel."""

from __future__ import annotations

import pytest

from .cases import CASES
from .compare import both

#: cases where pybpf is knowingly stricter than the kernel (docs/verifier-differences.md)
KNOWN_STRICTER = {"map_ptr_deref"}


@pytest.mark.kernel
@pytest.mark.parametrize("name,prog_type,text", CASES, ids=[c[0] for c in CASES])
def test_verdict_matches_the_kernel(name, prog_type, text):
    ours, kernel = both(text, prog_type)
    if name in KNOWN_STRICTER:
        assert not ours.accepted
        return
    assert ours.accepted == kernel.accepted, (ours.error, kernel.log[-400:])
    # the walk visits the same instructions: the processed counts agree
    assert ours.insns_processed == kernel.insns_processed
    if not kernel.accepted:
        # the reason is the kernel's own words (its log holds our message as a line)
        assert ours.error in kernel.log, (ours.error, kernel.log[-400:])


def test_no_case_is_accepted_that_the_kernel_refuses_for_memory_safety():
    """A cheap guard that needs no kernel: stricter-than-kernel cases stay rejected."""
    from pybpf.asm import assemble
    from pybpf.verifier import verify
    for name, prog_type, text in CASES:
        if name in KNOWN_STRICTER:
            assert not verify(assemble(text), prog_type=prog_type).accepted
