"""Programs in assembly that use maps give the same return values and map contents in pybpf's
interpreter as in the kernel (BPF_PROG_TEST_RUN): a per-protocol packet counter (hash and
per-CPU array), an LPM router, a queue round trip and a 3-stage tail-call pipeline."""

from __future__ import annotations

import struct

import pytest

from pybpf.asm import assemble
from pybpf.maps import create_map
from pybpf.vm import Interpreter

from .harness import apply, one_cpu

pytestmark = pytest.mark.kernel


def ipv4_packet(proto: int, dst: str = "10.0.0.1", payload: bytes = b"x" * 20) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                     bytes([192, 168, 0, 1]), bytes(int(p) for p in dst.split(".")))
    return b"\xff" * 6 + b"\x02" * 6 + b"\x08\x00" + ip + payload


COUNTER = """
.map counts {kind} key=4 value=8 max_entries=256
    r6 = r1
    r0 = *(u8 *)skb[9]
    *(u32 *)(r10 - 4) = r0
    r2 = r10
    r2 += -4
    r1 = counts ll
    call bpf_map_lookup_elem
    if r0 == 0 goto new
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
    goto done
new:
    r1 = 1
    *(u64 *)(r10 - 16) = r1
    r1 = counts ll
    r2 = r10
    r2 += -4
    r3 = r10
    r3 += -16
    r4 = 1
    call bpf_map_update_elem
done:
    r0 = *(u8 *)skb[9]
    exit
"""


def run_on_both(programs, specs, packets, setup=None):
    """Run ``programs[0]`` over ``packets`` in the VM and the kernel; returns both maps lists."""
    from pybpf import kernel

    ours = [create_map(spec) for spec in specs]
    with one_cpu():
        kmaps = [kernel.KernelMap.create(spec) for spec in specs]
        loaded = []
        try:
            loaded = [kernel.load_program(p, maps=[kmaps[[s.name for s in specs].index(m.name)]
                                                   for m in p.maps]) for p in programs]
            if setup:
                setup(ours, kmaps, programs, loaded)
            vm = Interpreter(programs[0], maps=[ours[[s.name for s in specs].index(m.name)]
                                                for m in programs[0].maps])
            for packet in packets:
                # a socket filter sees the packet from the network header on (the kernel's test
                # run pulls the Ethernet header), so LD_ABS offsets are IP offsets in both
                got = vm.run(packet[14:]) & 0xFFFFFFFF
                want = loaded[0].test_run(packet).retval
                assert got == want, packet.hex()
            yield ours, kmaps
        finally:
            for kp in loaded:
                kp.close()
            for km in kmaps:
                km.close()


@pytest.mark.parametrize("kind", ["hash", "percpu_hash", "lru_hash", "array", "percpu_array"])
def test_packet_counter_per_protocol_matches_the_kernel(kind):
    program = assemble(COUNTER.format(kind=kind))
    packets = [ipv4_packet(p) for p in (6, 17, 6, 1, 6, 47, 17, 255, 0, 6)]
    for ours, kmaps in run_on_both([program], program.maps, packets):
        assert dict(ours[0].items()) == dict(kmaps[0].items())
        tcp = ours[0][6]
        tcp = tcp if isinstance(tcp, list) else [tcp]
        assert sum(int.from_bytes(v, "little") for v in tcp) == 4   # on whichever CPU ran it


ROUTER = """
.map routes lpm_trie key=8 value=4 max_entries=64 flags=1
    r6 = r1
    r0 = *(u32 *)skb[16]
    r0 = be32 r0
    *(u32 *)(r10 - 4) = r0
    r1 = 32
    *(u32 *)(r10 - 8) = r1
    r2 = r10
    r2 += -8
    r1 = routes ll
    call bpf_map_lookup_elem
    if r0 == 0 goto miss
    r0 = *(u32 *)(r0 + 0)
    exit
miss:
    r0 = 0xffff
    exit
"""

ROUTES = [("0.0.0.0", 0, 1), ("10.0.0.0", 8, 2), ("10.1.0.0", 16, 3), ("10.1.2.0", 24, 4),
          ("10.1.2.128", 25, 5), ("192.168.0.0", 16, 6), ("10.1.2.3", 32, 7)]


def test_lpm_router_picks_the_longest_prefix_like_the_kernel():
    program = assemble(ROUTER.replace("0.0.0.0", ""))
    dsts = ["10.1.2.3", "10.1.2.4", "10.1.2.200", "10.1.3.1", "10.2.0.0", "11.0.0.1",
            "192.168.44.1", "192.169.0.1", "0.0.0.0", "255.255.255.255"]

    def setup(ours, kmaps, *_):
        for net, plen, hop in ROUTES[1:]:
            key = plen.to_bytes(4, "little") + bytes(int(p) for p in net.split("."))
            for m in (ours[0], kmaps[0]):
                m.update(key, hop.to_bytes(4, "little"))

    for ours, kmaps in run_on_both([program], program.maps,
                                   [ipv4_packet(6, d) for d in dsts], setup):
        assert ours[0].items() == list(kmaps[0].items())   # post-order iteration, too
    # and with a default route
    def setup_default(ours, kmaps, *_):
        setup(ours, kmaps)
        for m in (ours[0], kmaps[0]):
            m.update(bytes(8), (1).to_bytes(4, "little"))

    for ours, kmaps in run_on_both([program], program.maps,
                                   [ipv4_packet(6, d) for d in dsts], setup_default):
        assert ours[0].items() == list(kmaps[0].items())


QUEUE = """
.map q {kind} key=0 value=8 max_entries=4
    r6 = r1
    r0 = *(u8 *)skb[9]
    *(u64 *)(r10 - 8) = r0
    r1 = q ll
    r2 = r10
    r2 += -8
    r3 = {flags}
    call bpf_map_push_elem
    r7 = r0
    r1 = q ll
    r2 = r10
    r2 += -16
    call bpf_map_peek_elem
    if r0 != 0 goto out
    r0 = *(u64 *)(r10 - 16)
    r0 <<= 8
out:
    r0 ^= r7
    exit
"""


@pytest.mark.parametrize("kind", ["queue", "stack"])
@pytest.mark.parametrize("flags", [0, 2])
def test_queue_and_stack_helpers_match_the_kernel(kind, flags):
    program = assemble(QUEUE.format(kind=kind, flags=flags))
    packets = [ipv4_packet(p) for p in (1, 2, 3, 4, 5, 6)]
    for ours, kmaps in run_on_both([program], program.maps, packets):
        n = len(ours[0])
        assert n == 4
        assert [ours[0].pop() for _ in range(n)] == [kmaps[0].pop() for _ in range(n)]
        assert apply(kmaps[0], ("pop",), True) == apply(ours[0], ("pop",), False) == ("err", 2)


STAGE = """
.map jmp prog_array key=4 value=4 max_entries=4
.map trace array key=4 value=8 max_entries=4
    r6 = r1
    r1 = {stage}
    *(u32 *)(r10 - 4) = r1
    r2 = r10
    r2 += -4
    r1 = trace ll
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
    r1 = r6
    r2 = jmp ll
    r3 = {next}
    call bpf_tail_call
out:
    r0 = {ret}
    exit
"""


def _pipeline(stages: list[tuple[int, int]]):
    programs = [assemble(STAGE.format(stage=s, next=n, ret=s + 100)) for s, n in stages]
    return programs


def _link(ours, kmaps, programs, loaded):
    for i, (p, kp) in enumerate(zip(programs, loaded)):
        ours[0][i] = p
        kmaps[0].update(i, kp.fd)


def test_three_stage_tail_call_pipeline_matches_the_kernel():
    programs = _pipeline([(0, 1), (1, 2), (2, 3)])   # stage 2 jumps to an empty slot: returns
    for ours, kmaps in run_on_both(programs, programs[0].maps, [ipv4_packet(6)] * 3, _link):
        assert dict(ours[1].items()) == dict(kmaps[1].items())
        assert ours[1][2] == (3).to_bytes(8, "little")


def test_tail_call_chain_stops_after_33_calls_like_the_kernel():
    programs = _pipeline([(0, 0)])                    # a program that tail-calls itself
    # two runs of one loaded program: each run starts its own chain of 33 tail calls
    for ours, kmaps in run_on_both(programs, programs[0].maps, [ipv4_packet(6)] * 2, _link):
        assert ours[1][0] == kmaps[1][0] == (68).to_bytes(8, "little")


MAP_IN_MAP = """
.map outer {kind} key=4 value=4 max_entries=4
    r6 = r1
    r0 = *(u8 *)skb[9]
    r7 = r0
    r7 &= 1
    *(u32 *)(r10 - 4) = r7
    r2 = r10
    r2 += -4
    r1 = outer ll
    call bpf_map_lookup_elem
    if r0 == 0 goto miss
    r8 = r0
    r0 = *(u8 *)skb[9]
    *(u32 *)(r10 - 8) = r0
    r2 = r10
    r2 += -8
    r1 = r8
    call bpf_map_lookup_elem
    if r0 == 0 goto none
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
    r0 = *(u64 *)(r0 + 0)
    exit
none:
    r0 = 0xeeee
    exit
miss:
    r0 = 0xffff
    exit
"""


@pytest.mark.parametrize("kind", ["array_of_maps", "hash_of_maps"])
def test_map_in_map_program_reaches_inner_maps_like_the_kernel(kind):
    from pybpf import kernel
    from pybpf.program import MapSpec

    program = assemble(MAP_IN_MAP.format(kind=kind))
    inner = MapSpec("inner", "hash", 4, 8, 8)
    program.maps[0].inner = inner
    ours_outer = create_map(program.maps[0])
    ours_inner = create_map(inner)
    ours_outer[1] = ours_inner               # odd protocols go to the inner map, even miss
    vm = Interpreter(program, maps=[ours_outer])
    packets = [ipv4_packet(p) for p in (17, 17, 6, 1, 17, 3, 255, 1)]
    with one_cpu(), kernel.KernelMap.create(program.maps[0]) as kouter, \
            kernel.KernelMap.create(inner) as kinner, \
            kernel.load_program(program, maps=[kouter]) as kp:
        kouter.update(1, kinner.fd)
        for proto in (1, 3, 17):                 # 255 stays absent: the inner lookup misses
            ours_inner.update(proto, 0)
            kinner.update(proto, 0)
        for packet in packets:
            assert vm.run(packet[14:]) & 0xFFFFFFFF == kp.test_run(packet).retval
        assert dict(ours_inner.items()) == dict(kinner.items())
        assert ours_inner[17] == (3).to_bytes(8, "little")


PERCPU_LOOKUP = """
.map pc {kind} key=4 value=8 max_entries=4
    r1 = 2
    *(u32 *)(r10 - 4) = r1
    r1 = pc ll
    r2 = r10
    r2 += -4
    r3 = {cpu}
    call bpf_map_lookup_percpu_elem
    if r0 == 0 goto miss
    r0 = *(u64 *)(r0 + 0)
    exit
miss:
    r0 = 0xdead
    exit
"""


@pytest.mark.parametrize("kind", ["percpu_array", "percpu_hash", "lru_percpu_hash"])
@pytest.mark.parametrize("cpu", [0, 1, 7, 4096])
def test_lookup_percpu_elem_reads_each_cpus_copy_like_the_kernel(kind, cpu):
    from pybpf import kernel
    from pybpf.maps import possible_cpus

    program = assemble(PERCPU_LOOKUP.format(kind=kind, cpu=cpu))
    values = [100 + c for c in range(possible_cpus())]
    ours = create_map(program.maps[0])
    ours.update(2, values)
    with one_cpu(), kernel.KernelMap.create(program.maps[0]) as km, \
            kernel.load_program(program, maps=[km]) as kp:
        km.update(2, values)
        want = kp.test_run(bytes(64)).retval
    assert Interpreter(program, maps=[ours]).run(bytes(50)) & 0xFFFFFFFF == want
