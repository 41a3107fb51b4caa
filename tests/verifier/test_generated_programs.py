"""Hypothesis-generated programs (stack, packet, map value and ctx accesses with random offsets
and sizes, bounds checks, loops, helper arguments, pointer arithmetic, bpf-to-bpf calls) get
the kernel's verdict; those pybpf accepts run in the interpreter without a memory fault."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from pybpf.asm import assemble
from pybpf.errors import VMError
from pybpf.verifier import verify

from .generated import ALL
from .oracle import kernel_verdict


def _run_accepted(program, prog_type):
    """An accepted program must not fault in the interpreter (budget overruns are fine)."""
    from pybpf.errors import BudgetExceeded
    try:
        from pybpf.vm import Interpreter
    except ImportError:
        return
    if program.maps or prog_type in ("kprobe", "tracepoint"):
        return   # helpers and tracing contexts need more than the interpreter's defaults
    try:
        vm = Interpreter(program, prog_type=prog_type, budget=100_000)
        vm.run(bytes(range(64)))
    except BudgetExceeded:
        pass
    except VMError as exc:
        if exc.address is not None:
            raise AssertionError(f"accepted program faulted: {exc}") from exc


@pytest.mark.kernel
@pytest.mark.parametrize("family", sorted(ALL))
def test_generated_programs_get_the_kernels_verdict(family):
    @settings(max_examples=int(__import__("os").environ.get("PYBPF_EXAMPLES", 40)), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(ALL[family])
    def check(case):
        text, prog_type = case
        program = assemble(text)
        ours = verify(program, prog_type=prog_type)
        kernel = kernel_verdict(program, prog_type)
        assert ours.accepted == kernel.accepted, (text, ours.error, kernel.log[-300:])
        if ours.accepted:
            _run_accepted(program, prog_type)
    check()
