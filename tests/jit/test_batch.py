"""Batch and repeated runs: one native call, the same results as one run at a time."""

from __future__ import annotations

import random

import pytest

from pybpf.asm import assemble
from pybpf.errors import VerifierError, VMError
from pybpf.jit import JITProgram

PARSER = """
    r6 = r1
    r8 = r2
    r0 = *(u16 *)skb[12]
    if r0 != 0x800 goto other
    r0 = *(u8 *)skb[23]
    r7 = r0
    r0 = *(u32 *)skb[26]
    r0 ^= r7
    r1 = *(u8 *)(r6 + 14)
    r0 += r1
    r0 += r8
    exit
other:
    r0 = r8
    exit
"""


def _packets(n: int) -> list[bytes]:
    rng = random.Random(3)
    out = []
    for _ in range(n):
        size = rng.randrange(0, 80)
        pkt = bytearray(rng.getrandbits(8) for _ in range(size))
        if size >= 14 and rng.random() < 0.7:
            pkt[12:14] = b"\x08\x00"
        out.append(bytes(pkt))
    return out


@pytest.mark.parametrize("checked", [True, False])
def test_a_batch_gives_each_packet_the_interpreters_result(checked):
    packets = _packets(200)
    # unchecked native code needs the program verified (for each input size)
    jit = JITProgram(assemble(PARSER), checked=checked, sandbox=checked)
    expected = []
    for pkt in packets:
        try:
            expected.append(jit.vm.run(pkt))
        except (VMError, VerifierError):
            expected.append(None)
    # a short packet makes the direct load fault; batch only the ones that do not
    good = [p for p, e in zip(packets, expected) if e is not None]
    assert len(good) > 100
    assert jit.run_batch(good) == [e for e in expected if e is not None]


def test_a_fault_in_a_batch_raises_the_error_of_that_packet():
    jit = JITProgram(assemble("r0 = *(u8 *)(r1 + 20)\nexit"), sandbox=True)
    with pytest.raises(VMError) as info:
        jit.run_batch([bytes(30), bytes(30), bytes(5)])
    assert info.value.pc == 0
    assert jit.run_batch([bytes(range(30))] * 3) == [20, 20, 20]


def test_helpers_in_a_batch_see_the_current_packet():
    src = """
        r6 = r1
        r7 = r2
        r1 = 0
        *(u64 *)(r10 - 8) = r1
        r1 = m ll
        r2 = r10
        r2 += -8
        r3 = r6
        r4 = 0
        call bpf_map_update_elem
        r0 = r7
        exit
    .map m hash key=8 value=8 max_entries=4
    """
    jit = JITProgram(assemble(src))
    packets = [bytes([i]) * 8 for i in range(1, 6)]
    assert jit.run_batch(packets) == [8] * 5
    # the map holds the last packet's first 8 bytes, read by the helper from the data region
    assert dict(jit.maps[0].items())[bytes(8)] == bytes([5]) * 8


def test_repeat_runs_inside_one_call_and_reports_nanoseconds():
    jit = JITProgram(assemble("r0 = 0\nr1 = 100\nl:\nr0 += r1\nr1 -= 1\nif r1 != 0 goto l\nexit"))
    r0, ns = jit.time_runs(b"", 1000)
    assert r0 == 5050 and 0 < ns < 1_000_000
    mean = jit.run(b"", repeat=500)
    assert isinstance(mean, float) and jit.last_retval == 5050
