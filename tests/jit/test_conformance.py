"""All 312 bpf_conformance programs through the JIT, checked and unchecked.

The expected results are the suite's own (``../shared/conformance/bytecode.jsonl``, produced by
the suite's assembler and results files, not by pybpf). Memory is passed in r1 with its length
in r2, as the suite's plugin protocol does; helper 5 is uBPF's ``unwind`` there, so the same
override the interpreter's plugin uses is given to the JIT. Programs are compiled together in
one LLVM module per mode to keep the run short; a few also go through the plugin protocol.
"""

from __future__ import annotations

import json

import pytest

from pybpf.cli.plugin import unwind
from pybpf.errors import VerifierError
from pybpf.jit import JITProgram, compile_many
from pybpf.program import Program

from ..conftest import SHARED

CONFORMANCE = SHARED / "conformance" / "bytecode.jsonl"
pytestmark = pytest.mark.skipif(not CONFORMANCE.is_file(),
                                reason="../shared/conformance is not beside the repository")


def _cases() -> list[dict]:
    if not CONFORMANCE.is_file():
        return []
    return [json.loads(line) for line in CONFORMANCE.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "unchecked"])
def test_every_conformance_program_gives_the_suites_result_under_the_jit(checked):
    """Checked: every program, sandboxed (unverified, run-time checks). Unchecked: native code
    without checks runs only verified programs, so each is verified for its memory's size
    first; the only ones refused are those shifting by an out-of-range immediate, which the
    kernel refuses too ("invalid shift")."""
    cases = _cases()
    assert len(cases) == 312
    programs = [Program.from_bytes(bytes.fromhex(c["program"]), name=c["name"]) for c in cases]
    jits = compile_many(programs, checked=checked, helpers={5: unwind}, sandbox=checked)
    failures, refused = [], []
    for case, jit in zip(cases, jits):
        try:
            got = jit.run(bytes.fromhex(case["memory"]))
        except VerifierError as exc:
            refused.append(case["name"])
            if checked or "invalid shift" not in str(exc):
                failures.append(f"{case['name']}: refused: {exc}")
            continue
        except Exception as exc:  # a failure to report, not to stop at
            got = f"{type(exc).__name__}: {exc}"
        if got != case["result"]:
            failures.append(f"{case['name']}: got {got!r}, expected {case['result']:#x}")
    assert not failures, "\n".join(failures)
    assert len(refused) <= (0 if checked else 12), refused


@pytest.mark.parametrize("name", ["call_local.data", "lddw.data", "div64-by-zero-reg.data",
                                  "stxb-all.data", "call_unwind_fail.data"])
def test_single_conformance_programs_run_alone_like_in_a_batch_module(name):
    case = next(c for c in _cases() if c["name"] == name)
    jit = JITProgram(Program.from_bytes(bytes.fromhex(case["program"])), helpers={5: unwind},
                     sandbox=True)
    assert jit.run(bytes.fromhex(case["memory"])) == case["result"]


def test_the_plugin_protocol_runs_conformance_programs_on_the_jit_engine():
    from pybpf.cli.plugin import run_plugin

    for case in _cases()[:40]:
        assert run_plugin(case["program"], case["memory"], "jit") == case["result"], case["name"]
