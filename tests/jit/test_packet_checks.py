"""Legacy packet loads (LD_ABS / LD_IND) under the JIT's shared bounds checks.

The JIT tests the data length once for a run of loads and drops tests that earlier loads on
every path already proved (codegen ``group_abs_checks`` / ``proven_lengths``). A miss ends the
program with r0 = 0 -- so the observable results (r0, the stack a store left, maps) must be
those of the interpreter and the kernel for *every* packet length, including lengths that
make a later load of a run miss after a store, a call or a loop. Programs over the light
threshold (the -O0 engine) are covered too."""

from __future__ import annotations

import pytest

from pybpf.asm import assemble
from pybpf.jit import LIGHT_THRESHOLD, JITProgram
from pybpf.vm import Interpreter

PARSER = """
.map seen array key=4 value=8 max_entries=4
    r6 = r1
    r0 = *(u8 *)skb[20]
    r7 = r0
    r0 = *(u32 *)skb[30]
    r7 ^= r0
    r0 = *(u16 *)skb[{a}]
    r7 += r0
    *(u32 *)(r10 - 4) = 1
    r1 = seen ll
    r2 = r10
    r2 += -4
    call bpf_map_lookup_elem
    if r0 == 0 goto skip
    r9 = r0
    r0 = *(u8 *)skb[21]
    lock *(u64 *)(r9 + 0) += r7
    r0 = *(u16 *)skb[{e}]
    r7 += r0
skip:
    r0 = *(u16 *)skb[{b}]
    r7 += r0
    if r7 > 1000 goto big
    r0 = *(u8 *)skb[25]
    r7 += r0
    r0 = *(u32 *)skb[{c}]
    r7 ^= r0
big:
    r8 = 0
loop:
    r0 = r8
    r0 &= 7
    r0 = *(u8 *)skb[r0 + 40]
    r7 += r0
    r0 = *(u8 *)skb[22]
    r7 ^= r0
    r8 += 1
    if r8 < 4 goto loop
    r0 = *(u16 *)skb[{d}]
    r7 += r0
    r0 = r7
    exit
"""

#: (a, b, c, d): offsets that make the later loads of each run need more, less or as much
#: data as the first
OFFSETS = [(40, 34, 50, 60), (10, 44, 12, 26), (56, 4, 0, 62)]


def parser(a: int, b: int, c: int, d: int, copies: int = 1):
    text = PARSER.format(a=a, b=b, c=c, d=d, e=b + 20)
    if copies > 1:      # a long program (the light pipeline): the body repeated
        head, body = text.split("    r6 = r1\n", 1)
        body = body.replace("    r0 = r7\n    exit\n", "")
        parts = [head, "    r6 = r1\n"]
        for k in range(copies):
            parts.append(body.replace("skip", f"skip{k}").replace("big", f"big{k}")
                         .replace("loop", f"loop{k}"))
        parts.append("    r0 = r7\n    exit\n")
        text = "".join(parts)
    prog = assemble(text)
    prog.prog_type = "sched_cls"
    return prog


def packet(n: int) -> bytes:
    return bytes((7 * i + 3) & 0xFF for i in range(n))


def map_values(engine) -> list[bytes]:
    return [engine.maps[0].lookup(k.to_bytes(4, "little")) for k in range(4)]


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "unchecked"])
@pytest.mark.parametrize("offsets", OFFSETS, ids=lambda o: "-".join(map(str, o)))
def test_every_packet_length_gives_the_interpreters_result_and_map(offsets, checked):
    prog = parser(*offsets)
    jit = JITProgram(prog, checked=checked)
    vm = Interpreter(prog)
    for n in range(0, 70):
        data = packet(n)
        assert jit.run(data) == vm.run(data), n
        assert map_values(jit) == map_values(vm), n


def test_a_long_parser_on_the_light_pipeline_agrees_with_the_interpreter():
    prog = parser(40, 34, 50, 60, copies=15)
    assert len(prog.insns) > LIGHT_THRESHOLD
    jit = JITProgram(prog, checked=False)
    assert jit.compiled.light
    vm = Interpreter(prog)
    for n in range(0, 70, 3):
        data = packet(n)
        assert jit.run(data) == vm.run(data), n
        assert map_values(jit) == map_values(vm), n


@pytest.mark.kernel
@pytest.mark.parametrize("offsets", OFFSETS, ids=lambda o: "-".join(map(str, o)))
def test_every_packet_length_gives_the_kernels_result(offsets):
    from pybpf import kernel

    prog = parser(*offsets)
    jit = JITProgram(prog, checked=False)
    with kernel.load_program(prog) as kp:
        for n in range(14, 70):      # BPF_PROG_TEST_RUN wants at least an Ethernet header
            data = packet(n)
            assert jit.run(data) & 0xFFFFFFFF == kp.test_run(data).retval, n
