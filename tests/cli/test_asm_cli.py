"""``pybpf asm`` and ``pybpf disasm`` through the real entry point (a subprocess), so exit codes
and the one-line error contract are what a user sees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pybpf import isa

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "pybpf" / "examples"


def pybpf(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybpf", *args], capture_output=True,
                          text=True, input=stdin, timeout=60, cwd=ROOT)


def test_asm_prints_hex_bytecode_without_an_output_file(tmp_path):
    src = tmp_path / "p.s"
    src.write_text("r0 = 1\nexit\n")
    res = pybpf("asm", str(src))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == isa.encode([isa.Instruction(0xB7, imm=1),
                                             isa.Instruction(0x95)]).hex()
    assert not (tmp_path / "p.bin").exists()


def test_asm_writes_raw_bytes_and_disasm_reads_them_back(tmp_path):
    out = tmp_path / "sum.bin"
    res = pybpf("asm", str(EXAMPLES / "sum.s"), "-o", str(out))
    assert res.returncode == 0 and res.stdout == "", res.stderr
    insns = isa.decode(out.read_bytes())
    assert insns[-1].opcode == isa.JMP | isa.EXIT
    res = pybpf("disasm", str(out))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("0000000000000000 <.text>:\n")
    relisted = tmp_path / "again.s"
    relisted.write_text(res.stdout)
    assert pybpf("asm", str(relisted)).stdout.strip() == out.read_bytes().hex()


def test_asm_refuses_to_overwrite_its_input(tmp_path):
    src = tmp_path / "p.s"
    src.write_text("exit\n")
    res = pybpf("asm", str(src), "-o", str(src))
    assert res.returncode != 0
    assert "overwrite" in res.stderr and src.read_text() == "exit\n"


def test_asm_error_is_one_line_with_file_line_and_column(tmp_path):
    src = tmp_path / "bad.s"
    src.write_text("r0 = 1\n  r11 = 2\nexit\n")
    res = pybpf("asm", str(src))
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert f"{src}:2:3: unknown register 'r11'" in res.stderr


def test_asm_json_describes_the_program_and_its_maps():
    res = pybpf("asm", str(EXAMPLES / "counter.s"), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["syntax"] == "llvm"
    assert doc["maps"] == [{"name": "counters", "type": "array", "key_size": 4,
                            "value_size": 8, "max_entries": 1, "flags": 0}]
    code = bytes.fromhex(doc["bytecode"])
    assert len(code) == 8 * doc["slots"]
    assert doc["labels"] == {"missing": doc["slots"] - 2}


def test_asm_reads_ubpf_syntax_and_standard_input():
    res = pybpf("asm", "-", "--syntax", "ubpf", stdin="mov32 %r0, 3\nexit\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "b4000000030000009500000000000000"


def test_disasm_accepts_hex_text_and_prints_json(tmp_path):
    hexfile = tmp_path / "p.hex"
    hexfile.write_text("b7 00 00 00 2a 00 00 00\n95 00 00 00 00 00 00 00\n")
    res = pybpf("disasm", str(hexfile), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["format"] == "raw"
    assert [i["text"] for i in doc["programs"][0]["instructions"]] == ["r0 = 0x2a", "exit"]


@pytest.mark.parametrize("data,message", [
    (b"\x95\x00\x00\x00\x00\x00\x00", "not a multiple of 8"),
    (b"\x18\x01\x00\x00\x01\x00\x00\x00", "truncated"),
    (b"\xff" + b"\x00" * 7, "unknown opcode 0xff"),
    (b"\x05\x00\x05\x00\x00\x00\x00\x00" + b"\x95" + b"\x00" * 7, "outside the program"),
])
def test_disasm_refuses_bad_bytecode_in_one_line(tmp_path, data, message):
    path = tmp_path / "bad.bin"
    path.write_bytes(data)
    res = pybpf("disasm", str(path))
    assert res.returncode == 1
    assert message in res.stderr and res.stderr.count("\n") == 1


@pytest.mark.llvm
def test_disasm_of_a_bin_matches_llvm_objdump(tmp_path):
    from tests.asm import llvmtools
    text = (EXAMPLES / "sum.s").read_text()
    out = tmp_path / "sum.bin"
    assert pybpf("asm", str(EXAMPLES / "sum.s"), "-o", str(out)).returncode == 0
    listing = pybpf("disasm", str(out)).stdout
    reference = llvmtools.objdump(llvmtools.mc_object(text.replace("loop:", ".Lloop:")
                                                      .replace("goto loop", "goto .Lloop")))
    assert listing == reference


def test_disasm_of_an_elf_object_lists_its_programs(tmp_path):
    """A clang-built object, when clang and pybpf.elf are available."""
    import shutil
    pytest.importorskip("pybpf.elf")
    if not shutil.which("clang-19"):
        pytest.skip("clang-19 not installed")
    src = tmp_path / "p.c"
    src.write_text('__attribute__((section("socket"), used)) int prog(void *ctx) '
                   '{ return 7; }\nchar _license[] __attribute__((section("license"), used)) '
                   '= "GPL";\n')
    obj = tmp_path / "p.o"
    subprocess.run(["clang-19", "-O2", "-target", "bpf", "-c", str(src), "-o", str(obj)],
                   check=True, capture_output=True)
    res = pybpf("disasm", str(obj))
    assert res.returncode == 0, res.stderr
    reference = subprocess.run(["llvm-objdump-19", "-d", "--mcpu=v4", str(obj)],
                               capture_output=True, text=True, check=True).stdout
    assert res.stdout.strip() in reference


def test_disasm_of_ubpf_assembly_prints_it_in_llvm_syntax(tmp_path):
    src = tmp_path / "u.s"
    src.write_text("mov %r0, 1\njeq %r0, 1, +1\nexit\nexit\n")
    res = pybpf("disasm", str(src))
    assert res.returncode == 0, res.stderr
    again = tmp_path / "again.s"
    again.write_text(res.stdout)
    assert pybpf("asm", str(again)).stdout == pybpf("asm", str(src)).stdout
    assert "if r0 == 0x1 goto +0x1" in res.stdout


@pytest.mark.llvm
def test_disasm_objdump_mode_prints_local_calls_as_llvm_objdump_does(tmp_path):
    from tests.asm import llvmtools
    text = "r1 = 1\ncall .Lsub\nexit\n.Lsub:\nr0 = r1\nexit\n"
    src = tmp_path / "p.s"
    src.write_text(text)
    out = tmp_path / "p.bin"
    assert pybpf("asm", str(src), "-o", str(out)).returncode == 0
    listing = pybpf("disasm", "--objdump", str(out)).stdout
    assert listing == llvmtools.objdump(llvmtools.mc_object(text))
    assert "\tcall subprog_3\n" in pybpf("disasm", str(out)).stdout  # default: reads back
