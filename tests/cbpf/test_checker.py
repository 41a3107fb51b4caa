"""The classic checker agrees with the kernel's SO_ATTACH_FILTER on generated programs."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from pybpf.capture.attach import kernel_accepts
from pybpf.cbpf import isa
from pybpf.cbpf.checker import CheckError, check, is_valid

from .strategies import programs, valid_programs


@given(programs())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_checker_accepts_exactly_what_so_attach_filter_accepts(prog):
    assert is_valid(prog) == kernel_accepts(prog), prog


@given(valid_programs())
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_valid_programs_are_accepted_by_the_kernel(prog):
    assert kernel_accepts(prog)


EDGE_CASES = {
    "empty program": [],
    "ret x is not whitelisted": [isa.stmt(isa.RET | isa.X)],
    "division by constant zero": [isa.stmt(isa.ALU | isa.DIV | isa.K, 0), isa.stmt(isa.RET | isa.A)],
    "modulo by constant zero": [isa.stmt(isa.ALU | isa.MOD | isa.K, 0), isa.stmt(isa.RET | isa.A)],
    "shift by 32": [isa.stmt(isa.ALU | isa.LSH | isa.K, 32), isa.stmt(isa.RET | isa.A)],
    "shift by 31": [isa.stmt(isa.ALU | isa.RSH | isa.K, 31), isa.stmt(isa.RET | isa.A)],
    "M[16]": [isa.stmt(isa.ST, 16), isa.stmt(isa.RET | isa.A)],
    "read before write": [isa.stmt(isa.LD | isa.MEM, 3), isa.stmt(isa.RET | isa.A)],
    "write then read": [isa.stmt(isa.ST, 3), isa.stmt(isa.LD | isa.MEM, 3), isa.stmt(isa.RET | isa.A)],
    "write on one path only": [isa.jump(isa.JMP | isa.JEQ, 0, 0, 1), isa.stmt(isa.ST, 1),
                               isa.stmt(isa.LD | isa.MEM, 1), isa.stmt(isa.RET | isa.A)],
    "ja past the end": [isa.stmt(isa.JMP | isa.JA, 1), isa.stmt(isa.RET | isa.A)],
    "jt past the end": [isa.jump(isa.JMP | isa.JEQ, 0, 1, 0), isa.stmt(isa.RET | isa.A)],
    "unknown ancillary": [isa.stmt(isa.LD | isa.W | isa.ABS, isa.SKF_AD_OFF + 64), isa.stmt(isa.RET | isa.A)],
    "ancillary byte load": [isa.stmt(isa.LD | isa.B | isa.ABS, isa.SKF_AD_OFF + 4), isa.stmt(isa.RET | isa.A)],
    "net offset load": [isa.stmt(isa.LD | isa.B | isa.ABS, isa.SKF_NET_OFF + 9), isa.stmt(isa.RET | isa.A)],
    "no final ret": [isa.stmt(isa.LD | isa.W | isa.LEN)],
    "4096 instructions": [isa.stmt(isa.MISC | isa.TAX)] * 4095 + [isa.stmt(isa.RET | isa.K, 1)],
    "4097 instructions": [isa.stmt(isa.MISC | isa.TAX)] * 4096 + [isa.stmt(isa.RET | isa.K, 1)],
}


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_checker_edge_case_matches_the_kernel(name):
    prog = EDGE_CASES[name]
    assert is_valid(prog) == kernel_accepts(prog)


def test_checker_error_names_the_instruction():
    with pytest.raises(CheckError) as info:
        check([isa.stmt(isa.LD | isa.W | isa.LEN), isa.stmt(isa.ALU | isa.DIV | isa.K, 0),
               isa.stmt(isa.RET | isa.A)])
    assert info.value.index == 1
    assert "instruction 1" in str(info.value)
