"""The bpf_conformance suite through the interpreter and through the plugin protocol.

``../shared/conformance/bytecode.jsonl`` holds the suite pre-assembled by its own assembler,
with the results the suite expects (they come from the suite, not from pybpf). Every program
must give its result in-process on both execution paths and through the plugin protocol; a
handful also go through the real ``pybpf-plugin`` / ``pybpf plugin`` processes as the suite's
runner starts them. The negative cases must never "pass" in the runner's sense: an expected
error that the engine also raised, or an expected result that the engine also produced.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pybpf import isa
from pybpf.cli.plugin import parse_args, run_plugin, unwind
from pybpf.errors import BPFError, DecodeError
from pybpf.program import Program
from pybpf.vm import Interpreter

from .conftest import SHARED

CONFORMANCE = SHARED / "conformance"
pytestmark = pytest.mark.skipif(not (CONFORMANCE / "bytecode.jsonl").is_file(),
                                reason="../shared/conformance is not beside the repository")


def _cases() -> list[dict]:
    path = CONFORMANCE / "bytecode.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


CASES = _cases()


def _parse_data_file(path: Path) -> dict[str, str]:
    """Sections of a conformance .data file (``-- asm``, ``-- raw``, ``-- mem``, ...)."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        if line.startswith("-- "):
            current = line[3:].strip()
            sections.setdefault(current, [])
        elif current is not None and not line.lstrip().startswith("#"):
            sections[current].append(line)
    return {k: "\n".join(v).strip() for k, v in sections.items()}


def test_the_suite_has_all_312_programs():
    assert len(CASES) == 312


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_conformance_program_gives_the_expected_result_on_both_paths(case):
    program = Program.from_bytes(bytes.fromhex(case["program"]))
    vm = Interpreter(program, helpers={5: unwind}, sandbox=True)
    memory = bytes.fromhex(case["memory"])
    assert vm.run(memory) == case["result"]
    assert vm.run(memory, stepping=True) == case["result"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_conformance_program_gives_the_expected_result_through_the_plugin_protocol(case):
    # the memory as the runner passes it: bytes separated by spaces
    memory = " ".join(case["memory"][i:i + 2] for i in range(0, len(case["memory"]), 2))
    assert run_plugin(case["program"], memory) == case["result"]


def _plugin_command() -> list[str]:
    exe = shutil.which("pybpf-plugin")
    return [exe] if exe else [sys.executable, "-m", "pybpf.cli.plugin"]


SUBPROCESS_CASES = ["add.data", "lddw.data", "ldxdw.data", "be16-high.data",
                    "call_unwind_fail.data", "call_local.data", "lock_cmpxchg.data",
                    "stack.data", "div64-by-zero-reg.data", "sdiv64-intmin-by-negone-reg.data"]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_pybpf_plugin_process_prints_r0_in_hex_like_the_runner_expects(name):
    case = next((c for c in CASES if c["name"] == name), None)
    if case is None:
        pytest.skip(f"{name} is not in this copy of the suite")
    memory = " ".join(case["memory"][i:i + 2] for i in range(0, len(case["memory"]), 2))
    proc = subprocess.run(_plugin_command() + ([memory] if memory else []),
                          input=case["program"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == format(case["result"], "x")
    # the runner reads it back as a hex number
    assert int(proc.stdout, 16) == case["result"]


def test_pybpf_plugin_subcommand_speaks_the_same_protocol():
    case = next(c for c in CASES if c["memory"])
    proc = subprocess.run([sys.executable, "-m", "pybpf", "plugin", case["memory"]],
                          input=case["program"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout, 16) == case["result"]


def test_plugin_refuses_a_malformed_program_with_a_message_and_nonzero_exit():
    proc = subprocess.run(_plugin_command(), input="ff00000000000000", capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert "unknown opcode 0xff" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_plugin_arguments_take_memory_with_or_without_spaces_and_options_after_it():
    assert parse_args(["aa bb", "--engine", "interpreter"]) == ("aa bb",
                                                                {"engine": "interpreter"})
    assert parse_args(["aabb", "--engine=kernel"]) == ("aabb", {"engine": "kernel"})
    assert parse_args(["aa", "bb", "cc"])[0] == "aa bb cc"
    assert parse_args([]) == ("", {"engine": "interpreter"})


def test_callx_calls_the_helper_whose_id_the_register_holds():
    # callx.data: r1 = -1, r2 = 5, callx r2 (uBPF's unwind returns r1, non-zero: go on), r0 = 2
    text = _parse_data_file(CONFORMANCE / "tests" / "callx.data")
    try:
        from pybpf.asm import assemble
        program = assemble(text["asm"], syntax="ubpf")
    except ImportError:
        program = None
    if program is None:
        I = isa.Instruction
        program = Program([I(isa.ALU64 | isa.MOV, 1, imm=-1), I(isa.ALU64 | isa.MOV, 2, imm=5),
                           I(isa.CALLX, 2), I(isa.ALU64 | isa.MOV, 0, imm=2), I(isa.JMP | isa.EXIT)])
    assert any(i.opcode == isa.CALLX for i in program.insns)
    expected = int(text["result"], 16)
    assert run_plugin(program.bytecode().hex(), "") == expected


# --- negative cases ------------------------------------------------------------------------------

NEGATIVE = sorted((CONFORMANCE / "negative").glob("*.data")) if CONFORMANCE.is_dir() else []


#: the section headers the suite's files use; any other makes the runner reject the file
KNOWN_SECTIONS = {"asm", "raw", "mem", "result", "error", "c", "no register offset"}


def _engine_outcome(sections: dict[str, str]) -> tuple[str, object]:
    """('error', message) or ('result', r0) -- what the runner would observe from pybpf --
    or ('unassembled', why) when the runner cannot even build the program."""
    unknown = set(sections) - KNOWN_SECTIONS
    if unknown:
        return "unassembled", f"unknown section {sorted(unknown)}"
    if "raw" in sections:
        code = bytes.fromhex("".join(sections["raw"].split()))
    elif "asm" in sections:
        from pybpf.asm import assemble
        try:
            code = assemble(sections["asm"], syntax="ubpf").bytecode()
        except BPFError as exc:
            return "unassembled", str(exc)
    else:
        code = b""
    try:
        return "result", run_plugin(code.hex(), sections.get("mem", ""))
    except BPFError as exc:
        return "error", str(exc)


@pytest.mark.parametrize("path", NEGATIVE, ids=[p.name for p in NEGATIVE])
def test_negative_case_never_passes(path):
    sections = _parse_data_file(path)
    if "asm" in sections:
        pytest.importorskip("pybpf.asm")
    kind, value = _engine_outcome(sections)
    # an empty "-- error" section (the raw cases) names no error the engine could match
    expected_error = sections.get("error", "")
    if kind == "unassembled":
        return  # the runner cannot even build the program: the case fails
    if expected_error:
        passed = kind == "error"
    else:
        expected = sections.get("result")
        passed = (expected is not None and kind == "result"
                  and value == int(expected.split()[0], 16))
    assert not passed, f"{path.name}: pybpf gave {kind} {value!r}"


RAW_NEGATIVE = [p for p in NEGATIVE if "raw" in _parse_data_file(p)]


@pytest.mark.parametrize("path", RAW_NEGATIVE, ids=[p.name for p in RAW_NEGATIVE])
def test_raw_negative_case_is_refused_by_decoding(path):
    code = bytes.fromhex("".join(_parse_data_file(path)["raw"].split()))
    with pytest.raises(DecodeError):
        Program.from_bytes(code)


@pytest.mark.parametrize("name", ["call_unwind_fail.data", "ldxdw.data", "lock_cmpxchg.data"])
def test_plugin_engine_option_selects_the_jit(name):
    pytest.importorskip("pybpf.jit")
    case = next(c for c in CASES if c["name"] == name)
    memory_hex, options = parse_args([case["memory"], "--engine", "jit"])
    assert run_plugin(case["program"], memory_hex, options["engine"]) == case["result"]
