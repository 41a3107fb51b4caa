"""Hypothesis-generated sequences of map operations made *by a program* (bpf_map_lookup_elem,
bpf_map_update_elem with any flags byte, bpf_map_delete_elem) return the same r0 -- values
and negative errnos -- and leave the same contents in pybpf as in the kernel."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.asm import assemble
from pybpf.maps import create_map
from pybpf.vm import Interpreter

from .harness import NO_SHRINK, contents, one_cpu

pytestmark = pytest.mark.kernel

PROGRAM = """
.map m {kind} key=4 value=8 max_entries={entries}
    r6 = r1
    r0 = *(u32 *)skb[1]
    *(u32 *)(r10 - 4) = r0
    r0 = *(u32 *)skb[5]
    *(u32 *)(r10 - 16) = r0
    r0 = *(u32 *)skb[9]
    *(u32 *)(r10 - 12) = r0
    r0 = *(u8 *)skb[0]
    if r0 == 1 goto update
    if r0 == 2 goto delete
    r1 = m ll
    r2 = r10
    r2 += -4
    call bpf_map_lookup_elem
    if r0 == 0 goto miss
    r0 = *(u32 *)(r0 + 0)
    exit
miss:
    r0 = -1
    exit
update:
    r0 = *(u8 *)skb[13]
    r4 = r0
    r1 = m ll
    r2 = r10
    r2 += -4
    r3 = r10
    r3 += -16
    call bpf_map_update_elem
    exit
delete:
    r1 = m ll
    r2 = r10
    r2 += -4
    call bpf_map_delete_elem
    exit
"""

ETHERNET = b"\xff" * 12 + b"\x08\x00"


def packet(op: int, key: int, value: int, flags: int) -> bytes:
    return ETHERNET + struct.pack("!BIQB", op, key, value, flags) + bytes(16)


OPS = st.lists(st.tuples(st.sampled_from([0, 1, 1, 1, 2]), st.integers(0, 6),
                         st.integers(0, 2**64 - 1),
                         st.sampled_from([0, 0, 0, 1, 2, 3, 4, 5, 6, 8, 255])),
               min_size=5, max_size=30)


@pytest.mark.parametrize("kind, entries", [("hash", 3), ("array", 4), ("percpu_hash", 3),
                                           ("percpu_array", 4), ("lru_hash", 32),
                                           ("lru_percpu_hash", 32)])
@settings(max_examples=15, deadline=None, phases=NO_SHRINK,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors])
@given(ops=OPS)
def test_program_map_operations_match_the_kernel(kind, entries, ops):
    from pybpf import kernel

    program = assemble(PROGRAM.format(kind=kind, entries=entries))
    ours = create_map(program.maps[0])
    vm = Interpreter(program, maps=[ours])
    with one_cpu(), kernel.KernelMap.create(program.maps[0]) as km, \
            kernel.load_program(program, maps=[km]) as kp:
        for op in ops:
            frame = packet(*op)
            assert vm.run(frame[14:]) & 0xFFFFFFFF == kp.test_run(frame).retval, op
        assert contents(ours) == contents(km)


QUEUE_PROGRAM = """
.map q {kind} key=0 value=8 max_entries=3{extra}
    r6 = r1
    r1 = 0
    *(u64 *)(r10 - 8) = r1
    r0 = *(u32 *)skb[5]
    *(u32 *)(r10 - 16) = r0
    r0 = *(u32 *)skb[9]
    *(u32 *)(r10 - 12) = r0
    r0 = *(u8 *)skb[0]
    if r0 == 1 goto push
    r1 = q ll
    r2 = r10
    r2 += -8
    if r0 == 2 goto peek
    call bpf_map_{take}_elem
    goto done
peek:
    r2 = r10
    r2 += {peek_slot}
    call bpf_map_peek_elem
done:
    if r0 != 0 goto out
    r0 = *(u32 *){peek_read}
out:
    exit
push:
    r0 = *(u8 *)skb[13]
    r3 = r0
    r1 = q ll
    r2 = r10
    r2 += -16
    call bpf_map_push_elem
    exit
"""


@pytest.mark.parametrize("kind", ["queue", "stack", "bloom_filter"])
@settings(max_examples=15, deadline=None, phases=NO_SHRINK,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors])
@given(ops=st.lists(st.tuples(st.sampled_from([0, 1, 1, 2]), st.just(0),
                              st.integers(0, 5), st.sampled_from([0, 0, 1, 2, 3, 4, 255])),
                    min_size=5, max_size=30))
def test_program_queue_stack_and_bloom_operations_match_the_kernel(kind, ops):
    from pybpf import kernel
    from pybpf.program import MapSpec

    bloom = kind == "bloom_filter"
    text = QUEUE_PROGRAM.format(
        kind=kind, extra=" flags=64" if bloom else "",
        take="peek" if bloom else "pop",      # the verifier allows only push/peek on a bloom
        peek_slot=-16 if bloom else -8,       # bloom peek takes the value to look for
        peek_read="(r10 - 8)")
    program = assemble(text)
    ours = create_map(program.maps[0])
    vm = Interpreter(program, maps=[ours])
    spec = program.maps[0]
    with one_cpu(), kernel.KernelMap.create(spec) as km, \
            kernel.load_program(program, maps=[km]) as kp:
        for op in ops:
            frame = packet(*op)
            assert vm.run(frame[14:]) & 0xFFFFFFFF == kp.test_run(frame).retval, op
        if not bloom:
            while len(ours):
                assert ours.pop() == km.pop()
            assert isinstance(spec, MapSpec)


LPM_PROGRAM = """
.map t lpm_trie key=8 value=4 max_entries=4 flags=1
    r6 = r1
    r0 = *(u8 *)skb[1]
    *(u32 *)(r10 - 8) = r0
    r0 = *(u32 *)skb[2]
    r0 = be32 r0
    *(u32 *)(r10 - 4) = r0
    r0 = *(u32 *)skb[6]
    *(u32 *)(r10 - 16) = r0
    r0 = *(u8 *)skb[0]
    if r0 == 1 goto update
    if r0 == 2 goto delete
    r1 = t ll
    r2 = r10
    r2 += -8
    call bpf_map_lookup_elem
    if r0 == 0 goto miss
    r0 = *(u32 *)(r0 + 0)
    exit
miss:
    r0 = -1
    exit
update:
    r0 = *(u8 *)skb[10]
    r4 = r0
    r1 = t ll
    r2 = r10
    r2 += -8
    r3 = r10
    r3 += -16
    call bpf_map_update_elem
    exit
delete:
    r1 = t ll
    r2 = r10
    r2 += -8
    call bpf_map_delete_elem
    exit
"""


def lpm_packet(op: int, plen: int, addr: bytes, value: int, flags: int) -> bytes:
    return ETHERNET + struct.pack("!BB4sIB", op, plen, addr, value, flags) + bytes(20)


@settings(max_examples=25, deadline=None, phases=NO_SHRINK,
          suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(st.tuples(st.sampled_from([0, 1, 1, 2]),
                              st.sampled_from([0, 1, 8, 9, 16, 24, 31, 32, 33]),
                              st.sampled_from([b"\x0a\x00\x00\x00", b"\x0a\x01\x02\x03",
                                               b"\x0a\x80\x00\x01", b"\xc0\xa8\x01\x01",
                                               b"\x0b\x00\x00\x00"]),
                              st.integers(0, 2**32 - 1), st.sampled_from([0, 0, 1, 2, 3, 4])),
                    min_size=5, max_size=30))
def test_program_lpm_operations_match_the_kernel(ops):
    from pybpf import kernel

    program = assemble(LPM_PROGRAM)
    ours = create_map(program.maps[0])
    vm = Interpreter(program, maps=[ours])
    with kernel.KernelMap.create(program.maps[0]) as km, \
            kernel.load_program(program, maps=[km]) as kp:
        for op in ops:
            frame = lpm_packet(*op)
            assert vm.run(frame[14:]) & 0xFFFFFFFF == kp.test_run(frame).retval, op
        assert ours.items() == list(km.items())


@pytest.mark.parametrize("cpu", sorted(__import__("os").sched_getaffinity(0))[:4])
@pytest.mark.parametrize("kind", ["percpu_hash", "percpu_array", "lru_percpu_hash"])
def test_per_cpu_writes_from_a_program_land_in_that_cpus_copy_like_the_kernel(kind, cpu):
    from pybpf import kernel

    program = assemble(PROGRAM.format(kind=kind, entries=4))
    ours = create_map(program.maps[0])
    vm = Interpreter(program, maps=[ours])
    ops = [(1, 1, 5, 0), (1, 2, 6, 0), (0, 1, 0, 0), (1, 1, 7, 2), (2, 2, 0, 0), (1, 3, 8, 1)]
    with one_cpu(cpu), kernel.KernelMap.create(program.maps[0]) as km, \
            kernel.load_program(program, maps=[km]) as kp:
        for op in ops:
            frame = packet(*op)
            assert vm.run(frame[14:]) & 0xFFFFFFFF == kp.test_run(frame).retval, op
        assert contents(ours) == contents(km)
