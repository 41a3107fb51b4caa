"""``pybpf run``: inputs (.s, .bin, .o), data, --json, --repeat, --trace, engines, bad input.

Bad input of every kind must give one clear line on stderr and a non-zero exit, never a
traceback; those cases run the real ``pybpf`` process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pybpf import isa
from pybpf.cli import main

I = isa.Instruction
EXIT = I(isa.JMP | isa.EXIT)


def pybpf(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybpf", *args], capture_output=True,
                          text=True, input=input, timeout=120)


def run_inprocess(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def write(tmp_path: Path):
    def _write(name: str, content: str | bytes) -> str:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return str(path)

    return _write


def test_run_assembly_prints_the_full_64_bit_r0(capsys, write):
    prog = write("big.s", "r0 = 0x123456789abcdef0 ll\nexit\n")
    code, out, _ = run_inprocess(capsys, "run", prog, "--json")
    assert code == 0
    result = json.loads(out)
    assert result == {"retval": 0x123456789ABCDEF0, "ns_per_run": result["ns_per_run"],
                      "engine": "interpreter", "maps": {}}


def test_run_passes_data_in_r1_and_its_length_in_r2(capsys, write):
    prog = write("len.s", "r0 = *(u8 *)(r1 + 2)\nr0 <<= 8\nr0 += r2\nexit\n")
    code, out, _ = run_inprocess(capsys, "run", prog, "--data", "01 02 7f 04", "--json")
    assert json.loads(out)["retval"] == (0x7F << 8) + 4
    data_file = write("data.bin", bytes([9, 9, 0x33, 9, 9, 9]))
    code, out, _ = run_inprocess(capsys, "run", prog, "--data-file", data_file, "--json")
    assert json.loads(out)["retval"] == (0x33 << 8) + 6


def test_run_reads_raw_bytecode(capsys, write):
    prog = write("p.bin", isa.encode([I(isa.ALU64 | isa.MOV, 0, imm=-3), EXIT]))
    code, out, _ = run_inprocess(capsys, "run", prog, "--json")
    assert json.loads(out)["retval"] == (1 << 64) - 3


def test_repeat_reports_a_mean_time_per_run(capsys, write):
    prog = write("sum.s", "r0 = 0\nr1 = 100\nl:\nr0 += r1\nr1 -= 1\nif r1 != 0 goto l\nexit\n")
    code, out, _ = run_inprocess(capsys, "run", prog, "--repeat", "20", "--json")
    result = json.loads(out)
    assert result["retval"] == 5050
    assert result["ns_per_run"] > 0
    code, out, _ = run_inprocess(capsys, "run", prog, "--repeat", "3")
    assert "ns per run" in out and "5050" in out


def test_trace_prints_each_instruction_with_the_registers_it_changed(capsys, write):
    prog = write("t.s", "r0 = 1\nr1 = 2\nr0 += r1\nif r0 == 3 goto +1\nr0 = 9\nexit\n")
    code, out, _ = run_inprocess(capsys, "run", prog, "--trace")
    lines = out.splitlines()
    trace = [line for line in lines if line[:6].strip().rstrip(":").isdigit()]
    assert [int(line.split(":")[0]) for line in trace] == [0, 1, 2, 3, 5]
    assert trace[0].endswith("r0=0x1")
    assert trace[2].endswith("r0=0x3") and "r1=" not in trace[2]
    assert "r0" not in trace[3].split("goto")[-1]   # a jump changes no register
    assert "retval = 3" in out


def test_run_shows_map_contents_after_the_run(capsys, write):
    pytest.importorskip("pybpf.maps")
    example = Path(__file__).resolve().parents[2] / "pybpf" / "examples" / "counter.s"
    if not example.is_file():
        pytest.skip("counter example missing")
    code, out, err = run_inprocess(capsys, "run", str(example), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["maps"] == {"counters": [["00000000", "0100000000000000"]]}


@pytest.mark.kernel
def test_a_typed_run_gives_the_kernels_context_view(capsys, write):
    pytest.importorskip("pybpf.progtypes")
    # r0 = skb->len and skb->protocol: built from the data as BPF_PROG_TEST_RUN builds them
    prog = write("skb.s", "r2 = *(u32 *)(r1 + 0)\nr0 = *(u32 *)(r1 + 16)\nr0 <<= 16\n"
                          "r0 += r2\nexit\n")
    frame = "ffffffffffff" + "020000000001" + "0800" + "45" + "00" * 19
    results = {}
    for engine in ("interpreter", "kernel"):
        code, out, err = run_inprocess(capsys, "run", prog, "--type", "socket_filter",
                                       "--engine", engine, "--data", frame, "--json")
        assert code == 0, err
        results[engine] = json.loads(out)["retval"]
    assert results["interpreter"] == results["kernel"]


@pytest.mark.kernel
def test_kernel_engine_gives_the_interpreters_result(capsys, write):
    prog = write("k.s", "r0 = *(u8 *)(r1 + 0)\nr0 = 0x11223344 ll\nexit\n")
    # socket_filter: r1 is the skb context; the program only returns a constant
    prog = write("k.s", "r0 = 0x11223344\nr0 += 5\nexit\n")
    code, out, err = run_inprocess(capsys, "run", prog, "--engine", "kernel",
                                   "--data", "00" * 14, "--repeat", "10", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["engine"] == "kernel" and result["retval"] == 0x11223349
    assert result["ns_per_run"] is not None


def test_jit_engine_runs_or_says_it_is_unavailable(capsys, write):
    prog = write("j.s", "r0 = 40\nr0 += 2\nexit\n")
    code, out, err = run_inprocess(capsys, "run", prog, "--engine", "jit", "--json")
    if code:
        assert "not available" in err
    else:
        assert json.loads(out)["retval"] == 42


@pytest.mark.llvm
def test_run_loads_an_elf_object_compiled_by_clang(capsys, tmp_path):
    pytest.importorskip("pybpf.elf")
    clang = shutil.which("clang-19") or shutil.which("clang")
    if not clang:
        pytest.skip("clang not installed")
    src = tmp_path / "prog.c"
    src.write_text('__attribute__((section("socket"), used))\n'
                   'int answer(void *ctx) { volatile int x = 6; return x * 7; }\n'
                   'char _license[] __attribute__((section("license"), used)) = "GPL";\n')
    obj = tmp_path / "prog.o"
    subprocess.run([clang, "-O2", "-target", "bpf", "-c", str(src), "-o", str(obj)], check=True)
    # the section makes it a socket filter: it runs on an Ethernet frame, as in the kernel
    code, out, err = run_inprocess(capsys, "run", str(obj), "--data", "00" * 14, "--json")
    assert code == 0, err
    assert json.loads(out)["retval"] == 42
    code, out, err = run_inprocess(capsys, "run", str(obj), "--program", "nope")
    assert code != 0 and "nope" in err


# --- bad input: one line, non-zero exit, no traceback -----------------------------------------------

BAD_INPUTS = {
    "length_not_a_multiple_of_8": (b"\xb7\x00\x00\x00\x01\x00\x00\x00\x95\x00", "multiple of 8"),
    "truncated_64_bit_load": (bytes.fromhex("1800000001000000"), "truncated"),
    "unknown_opcode": (bytes.fromhex("ff00000000000000") + bytes.fromhex("9500000000000000"),
                       "unknown opcode"),
    "jump_outside_the_program": (bytes.fromhex("0500050000000000") +
                                 bytes.fromhex("9500000000000000"), "outside"),
    "memory_fault": (isa.encode([I.lddw(1, 0x40), I(isa.LDX | isa.MEM | isa.DW, 0, 1, 0),
                                 EXIT]), "pc 2"),
    "budget_exhausted": (isa.encode([I(isa.JMP | isa.JA, off=-1), EXIT]), "budget"),
    "unknown_helper": (isa.encode([I(isa.JMP | isa.CALL, imm=99999), EXIT]), "99999"),
}


RUNTIME_FAULTS = ("memory_fault", "budget_exhausted", "unknown_helper")
# what the verifier (as the kernel's) says about the same programs when they are not sandboxed
REFUSED = {"memory_fault": "R1 invalid mem access 'scalar'",
           "budget_exhausted": "unreachable insn 1",
           "unknown_helper": "invalid func unknown#99999"}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_program_the_verifier_rejects_is_not_run_without_sandbox(name, write):
    prog = write(f"{name}.bin", BAD_INPUTS[name][0])
    proc = pybpf("run", prog)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    if name == "unknown_helper":
        # refused while loading, before any verification: no helper has that id
        assert len(lines) == 1 and "helper id 99999 is unknown" in lines[0], lines
    else:
        assert len(lines) == 1 and REFUSED[name] in lines[0] and "--sandbox" in lines[0], lines
    assert proc.stdout == ""


@pytest.mark.kernel
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_the_kernel_refuses_what_run_refuses_without_sandbox(name):
    from pybpf import kernel
    from pybpf.errors import KernelError
    from pybpf.program import Program

    with pytest.raises(KernelError) as info:
        kernel.load_program(Program.from_bytes(BAD_INPUTS[name][0]), prog_type="socket_filter",
                            log_level=1)
    assert REFUSED[name] in (info.value.log or str(info.value))


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_gets_one_line_and_a_nonzero_exit(name, write):
    code, needle = BAD_INPUTS[name]
    prog = write(f"{name}.bin", code)
    args = ["run", prog] + (["--budget", "5000"] if name == "budget_exhausted" else [])
    if name in RUNTIME_FAULTS:
        args.append("--sandbox")     # faults at run time need an unverified (sandboxed) run
    proc = pybpf(*args)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert proc.stdout == ""


def test_malformed_assembly_and_missing_files_get_one_line(write):
    prog = write("bad.s", "r0 = 1\nr11 = 2\nexit\n")
    proc = pybpf("run", prog)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "bad.s:2" in proc.stderr
    proc = pybpf("run", prog + ".missing")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr


def test_bad_data_hex_gets_one_line(write):
    prog = write("ok.s", "r0 = 0\nexit\n")
    proc = pybpf("run", prog, "--data", "zz")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "hex" in proc.stderr


def test_trace_with_json_keeps_stdout_machine_readable(capsys, write):
    prog = write("tj.s", "r0 = 5\nexit\n")
    code, out, err = run_inprocess(capsys, "run", prog, "--trace", "--json")
    assert code == 0
    assert json.loads(out)["retval"] == 5
    assert "r0=0x5" in err


def test_trace_needs_the_interpreter(capsys, write):
    prog = write("tk.s", "r0 = 5\nexit\n")
    code, _, err = run_inprocess(capsys, "run", prog, "--trace", "--engine", "kernel")
    assert code != 0 and "interpreter" in err


def test_plugin_refuses_an_unknown_option_in_one_line():
    proc = subprocess.run([sys.executable, "-m", "pybpf", "plugin", "aa", "--bogus"],
                          input="9500000000000000", capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "--bogus" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
