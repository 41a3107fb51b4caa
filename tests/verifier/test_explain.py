"""Explanations of the ten most common real-world rejections name the C line, the values and a
fix; the kernel confirms each program is really rejected (ret_pointer: for unprivileged
loaders only, so only pybpf's --unprivileged mode is checked there)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pybpf.verifier import verify

from .oracle import kernel_verdict

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"

#: program -> (C line it must name, words that must appear among the values, words of the fix)
EXPECTED = {
    "pkt_no_bounds": ("return data[12] == 8", ["[12, 13)", "[0, 0)"],
                      ["data + 13 > data_end", "before line"]),
    "map_no_null": ("return *v;", ["map_value_or_null"], ["NULL", "if (!value)"]),
    "unbounded_index": ("return b->bytes[i];", ["4294967295", "64 bytes"], ["> 63"]),
    "uninit_reg": ('asm volatile("%0 = r7"', ["R7 was never written"], ["assign r7"]),
    "stack_oob": ("r10 - 520", ["fp-520", "[fp-512, fp)"], ["512 bytes"]),
    "wrong_helper_arg": ("bpf_map_lookup_elem(&counts, (void *)(long)skb->len)",
                         ["R2 is scalar"], ["&key"]),
    "unbounded_loop": ("while (stop == 0)", ["repeats"], ["bound the loop"]),
    "pkt_end_arith": ('"%0 += -14"', ["pkt_end"], ["data + len > data_end"]),
    "misaligned_stack": ("r10 - 12", ["-12", "multiple of 8"], ["multiple of the size"]),
    "ret_pointer": ("return (long)skb;", ["ctx pointer"], ["return a number"]),
}


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    from pybpf.pytest_plugin import compile_c, find_clang
    if find_clang() is None:
        pytest.skip("clang is not installed")
    from pybpf.elf import load_object
    out = tmp_path_factory.mktemp("verifier-c")
    obj = load_object(compile_c(HERE / "fixtures" / "common_errors.c", out, "-I",
                                str(FIXTURES)))
    return obj.programs


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_explanation_names_the_line_the_values_and_a_fix(programs, name):
    prog = programs[name]
    result = verify(prog, unprivileged=name == "ret_pointer")
    assert not result.accepted
    exp = result.explain()
    line_text, values, fixes = EXPECTED[name]
    assert exp.source is not None and line_text in exp.source
    assert re.search(r"common_errors\.c:\d+:", exp.source)
    joined = " ".join(exp.values + exp.path)
    for v in values:
        assert v in joined, (v, exp.text())
    for f in fixes:
        assert f in exp.suggestion, (f, exp.text())
    text = exp.text()
    assert "fix:" in text and "rule:" in text


@pytest.mark.kernel
@pytest.mark.parametrize("name", sorted(set(EXPECTED) - {"ret_pointer"}))
def test_the_kernel_rejects_each_common_error_too(programs, name):
    prog = programs[name]
    kernel = kernel_verdict(prog, prog.prog_type)
    ours = verify(prog)
    assert not kernel.accepted
    assert not ours.accepted
    assert ours.error in kernel.log or ours.error_id == "infinite-loop"


@pytest.mark.kernel
def test_the_kernel_accepts_returning_a_pointer_as_root_like_pybpf(programs):
    prog = programs["ret_pointer"]
    assert kernel_verdict(prog, prog.prog_type).accepted
    assert verify(prog).accepted


def test_json_explanation_has_a_stable_error_id(programs):
    result = verify(programs["map_no_null"])
    data = json.loads(json.dumps(result.to_json() | {"explanation": result.explain().to_json()}))
    assert data["error_id"] == "invalid-mem-access"
    assert data["explanation"]["source"].endswith("return *v;")
