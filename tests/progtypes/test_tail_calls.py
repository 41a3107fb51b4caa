"""Tail calls with a program type, against the kernel: the target runs on the caller's context
and packet (bound moves made before the jump stay), the chain stops at 33 tail calls, and a tail
call made inside a bpf-to-bpf subprogram replaces that subprogram only -- its caller goes on
with the target's return value."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from pybpf import kernel
from pybpf.asm import assemble
from pybpf.maps import create_map
from pybpf.vm import Interpreter

from .compare import frame, ipv4

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.kernel

PACKET = frame(payload=ipv4(6, payload=bytes(range(40))))
MAPS = """
.map jmp prog_array key=4 value=4 max_entries=4
.map hits array key=4 value=8 max_entries=4
"""


def count(slot: int) -> str:
    """hits[slot] += 1 (r6 keeps the context)."""
    return f"""
    r1 = {slot}
    *(u32 *)(r10 - 4) = r1
    r2 = r10
    r2 += -4
    r1 = hits ll
    call bpf_map_lookup_elem
    if r0 == 0 goto +2
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
    """


@contextlib.contextmanager
def linked(sources: list[str], prog_type: str = "xdp"):
    """The programs in the kernel and in pybpf, prog_array slot i = program i; yields
    (kernel programs, kernel maps, pybpf interpreter of program 0, pybpf maps)."""
    programs = [assemble(MAPS + s) for s in sources]
    specs = programs[0].maps
    ours = [create_map(s) for s in specs]
    kmaps = [kernel.KernelMap.create(s) for s in specs]
    loaded = []
    try:
        loaded = [kernel.load_program(p, prog_type=prog_type, maps=kmaps) for p in programs]
        for i, (p, kp) in enumerate(zip(programs, loaded)):
            ours[0][i] = p
            kmaps[0].update(i, kp.fd)
        vm = Interpreter(programs[0], maps=ours, prog_type=prog_type)
        yield loaded, kmaps, vm, ours
    finally:
        for kp in loaded:
            kp.close()
        for km in kmaps:
            km.close()


def compare(sources: list[str], packet: bytes = PACKET, prog_type: str = "xdp") -> None:
    with linked(sources, prog_type) as (loaded, kmaps, vm, ours):
        theirs = loaded[0].test_run(packet)
        r0 = vm.run(packet)
        assert r0 & 0xFFFFFFFF == theirs.retval
        assert vm.data_out() == theirs.data_out
        assert dict(ours[1].items()) == dict(kmaps[1].items())


def test_a_tail_call_target_sees_the_packet_as_its_caller_left_it():
    first = "r6 = r1\n" + count(0) + """
    r1 = r6
    r2 = 4
    call bpf_xdp_adjust_head
    r1 = r6
    r2 = jmp ll
    r3 = 1
    call bpf_tail_call
    r0 = 99
    exit
    """
    second = "r6 = r1\n" + count(1) + """
    r2 = *(u32 *)(r6 + 0)
    r3 = *(u32 *)(r6 + 4)
    r0 = r3
    r0 -= r2
    exit
    """
    compare([first, second])


def test_a_chain_of_tail_calls_stops_at_33_with_a_context():
    loop = "r6 = r1\n" + count(0) + """
    r1 = r6
    r2 = jmp ll
    r3 = 0
    call bpf_tail_call
    r0 = 7
    exit
    """
    compare([loop])
    compare([loop.replace("xdp_adjust_head", "")], PACKET, "sched_cls")


def test_a_tail_call_inside_a_subprogram_returns_to_the_subprograms_caller(tmp_path):
    """tail_subprog.c: ``entry`` returns jump(ctx, slot) * 10 + 1, and ``jump`` tail-calls
    slot ``data[0] & 3`` (only slot 1 holds a program) or returns 5."""
    from pybpf.elf import load_object
    from pybpf.elf.collection import KernelCollection, VMCollection
    from pybpf.pytest_plugin import compile_c, find_clang

    if find_clang() is None:
        pytest.skip("clang is not installed")
    obj = compile_c(HERE / "tail_subprog.c", tmp_path, f"-I{HERE.parent / 'fixtures'}")
    with KernelCollection(load_object(str(obj))) as kc:
        vc = VMCollection(load_object(str(obj)))
        for first in range(4):
            packet = bytes([first]) + PACKET[1:]
            theirs = kc.programs["entry"].test_run(packet)
            ours = vc.programs["entry"].test_run(packet)
            assert ours.retval == theirs.retval, first
        assert theirs.retval == 51
