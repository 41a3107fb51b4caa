"""Log level 2 is the kernel's, line for line: instructions with the registers they touched,
branch states, ``N: safe``, the precision backtracking (``mark_precise: frame0: last_idx ...``,
``regs=r1 stack= before N: insn``, ``parent state regs=...``), the caller/callee blocks of
bpf-to-bpf calls and the closing statistics.

The ``func#N @M`` lines and the ``Live regs before insn`` table (with loop numbers) at the top
are compared too. Lines pybpf does not print are filtered out of the kernel's log before
comparing (listed in docs/verifier-differences.md, "Messages and logs"): the stack-liveness
debug lines. ``SCC enter (N)`` / ``SCC exit (N)`` (loop visits) are compared.
"""

from __future__ import annotations

import difflib
import re

import pytest

from pybpf.asm import assemble
from pybpf.verifier import verify

from .oracle import kernel_verdict

_NOT_PRINTED = re.compile(r"^(\([\d,]+\) frame \d+ insn |\([\d,]+\) live stack )")

PROGRAMS = {
    "counted loop": """
        r0 = 0
        r1 = 0
        r2 = 5
    loop:
        r0 += r1
        r2 += 1
        r1 += 1
        if r1 < 10 goto loop
        r0 = 0
        exit
    """,
    "spilled scalar used as offset": """
        r6 = *(u32 *)(r1 + 0)
        r7 = 0
        *(u64 *)(r10 - 8) = r7
        if r6 > 10 goto l1
        r7 = 1
        *(u64 *)(r10 - 8) = r7
    l1:
        r8 = *(u64 *)(r10 - 8)
        r2 = r10
        r2 += -16
        r2 += r8
        r0 = 0
        exit
    """,
    "subprogram result used as offset": """
        r6 = *(u32 *)(r1 + 0)
        r1 = 2
        if r6 > 10 goto l1
        r1 = 3
    l1:
        call sub
        r2 = r10
        r2 += -16
        r2 += r0
        r0 = 0
        exit
    sub:
        r0 = r1
        r0 += 1
        exit
    """,
    "linked registers": """
        r6 = *(u32 *)(r1 + 0)
        r7 = *(u32 *)(r1 + 4)
        r8 = r7
        if r6 > 10 goto l1
        r6 = 1
    l1:
        if r8 > 7 goto out
        r2 = r10
        r2 += -16
        r2 += r7
    out:
        r0 = 0
        exit
    """,
    "loop with a branch on an unknown": """
        r6 = *(u32 *)(r1 + 0)
        r0 = 0
        r1 = 0
    loop:
        r1 += 1
        if r6 > 5 goto skip
        r0 += 1
    skip:
        if r1 < 4 goto loop
        r2 = r10
        r2 += -16
        r2 += r1
        exit
    """,
    "imprecise counter pruned": """
        r6 = *(u32 *)(r1 + 0)
        r7 = 0
        if r6 > 3 goto a
        r7 = 1
    a:
        if r6 > 5 goto b
        r7 += 2
    b:
        r0 = r7
        exit
    """,
}


def _comparable(log: str) -> list[str]:
    return [line for line in log.splitlines() if not _NOT_PRINTED.match(line)]


@pytest.mark.kernel
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_level_2_log_is_the_kernels_line_for_line(name):
    program = assemble(PROGRAMS[name])
    ours = verify(program, prog_type="socket_filter", log_level=2)
    kernel = kernel_verdict(program, "socket_filter", log_level=2)
    assert ours.accepted == kernel.accepted
    theirs = _comparable(kernel.log)
    mine = _comparable(ours.log)
    assert mine == theirs, "\n".join(difflib.unified_diff(theirs, mine, "kernel", "pybpf",
                                                           lineterm=""))


@pytest.mark.kernel
def test_backtracking_lines_appear_in_both_logs():
    """The comparison above is not vacuous: the kernel's log has mark_precise lines."""
    program = assemble(PROGRAMS["counted loop"])
    ours = verify(program, prog_type="socket_filter", log_level=2).log
    assert "mark_precise: frame0: last_idx 6 first_idx 0 subseq_idx -1" in ours
    assert "parent state regs=r1 stack=:" in ours
    assert "  1   6: 012....... (a5) if r1 < 0xa goto pc-4" in ours
    assert "SCC enter (1)" in ours and "SCC exit (1)" in ours


#: a ld_imm64 of a map shows the map's kernel address in the kernel's log
_MAP_ADDR = re.compile(r"(\(18\) r\d+ = )(0xffff[0-9a-f]{12}|map\[id:\d+\])( *)")


def _normalised(log: str) -> list[str]:
    return [_MAP_ADDR.sub(r"\1<map> ", line) for line in _comparable(log)]


@pytest.mark.kernel
def test_most_rule_case_logs_are_the_kernels_line_for_line():
    """The hand-written rule cases at level 2 (map addresses aside): measured 142 of 156
    identical; the rest are the packet-end markers pybpf does not model (6), helper details
    (tail call, ring buffer ids, a helper the program type may not call), a map read through
    BTF and a subprogram chain's state count. At least 135."""
    from .cases import CASES
    same = 0
    for _name, prog_type, text in CASES:
        program = assemble(text)
        kernel = kernel_verdict(program, prog_type, log_level=2)
        if kernel.errno == 28:
            continue   # the kernel's log buffer overflowed (1M-instruction programs)
        ours = verify(program, prog_type=prog_type, log_level=2)
        same += _normalised(kernel.log) == _normalised(ours.log)
    assert same >= 135, same
