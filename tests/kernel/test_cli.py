"""``pybpf prog``, ``pybpf map`` and ``pybpf attach`` against objects this test loads itself
(the kernel's own view, read back through bpf(2), is the reference)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pybpf import isa, kernel
from pybpf.program import MapSpec, Program

pytestmark = pytest.mark.kernel


def pybpf(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybpf", *args], capture_output=True,
                          text=True, check=check, timeout=60)


def test_prog_show_prints_what_the_kernel_knows_about_a_program():
    prog = Program([isa.Instruction(0xB7, 0, 0, 0, 1), isa.Instruction(0x95)], name="clishow")
    with kernel.load_program(prog) as kp:
        info = kp.info()
        shown = json.loads(pybpf("prog", "show", str(info.id), "--json").stdout)
        text = pybpf("prog", "show", str(info.id)).stdout
        listed = json.loads(pybpf("prog", "list", "--json").stdout)
        dumped = pybpf("prog", "dump", str(info.id)).stdout
    assert shown["name"] == "clishow" and shown["tag"] == info.tag
    assert shown["type"] == "socket_filter" and shown["bytes_xlated"] == 16
    assert text.startswith(f"{info.id}: socket_filter  name clishow  tag {info.tag}  gpl")
    assert any(r["id"] == info.id for r in listed)
    assert "r0 = 0x1" in dumped and "exit" in dumped


def test_map_update_and_dump_change_and_show_a_live_map():
    with kernel.KernelMap.create(MapSpec("climap", "hash", 4, 4, 8)) as m:
        mid = str(m.id)
        pybpf("map", "update", mid, "01000000", "2a000000")
        assert m[1] == (42).to_bytes(4, "little")
        m[2] = 7
        rows = json.loads(pybpf("map", "dump", mid, "--json").stdout)
        assert sorted((r["key"], r["value"]) for r in rows) == \
            [("01000000", "2a000000"), ("02000000", "07000000")]
        text = pybpf("map", "dump", mid).stdout
        assert pybpf("map", "dump", "--name", "climap").stdout == text
        assert "key: 01 00 00 00  value: 2a 00 00 00" in text and "Found 2 elements" in text
        failed = pybpf("map", "update", mid, "01000000", "00000000", "--flags", "noexist",
                       check=False)
        assert failed.returncode != 0 and "EEXIST" in failed.stderr
        assert failed.stderr.count("\n") == 1
        pybpf("map", "delete", mid, "01000000")
        assert 1 not in m


def test_attach_runs_a_tracepoint_program_and_prints_its_maps(tmp_path):
    source = tmp_path / "sleeps.s"
    source.write_text("""
    .map counts array key=4 value=8 max_entries=1
    *(u32 *)(r10 - 4) = 0
    r2 = r10
    r2 += -4
    r1 = counts ll
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
out:
    r0 = 0
    exit
""")
    out = pybpf("attach", str(source), "syscalls:sys_enter_clock_nanosleep", "--type",
                "tracepoint", "--duration", "0.3", "--json")
    rows = json.loads(out.stdout)["maps"]["counts"]
    assert int.from_bytes(bytes.fromhex(rows[0][1]), "little") > 0


def test_an_unknown_program_id_is_one_clear_line():
    failed = pybpf("prog", "show", "999999999", check=False)
    assert failed.returncode == 1
    assert failed.stderr.startswith("pybpf: error: no program with id 999999999")
