"""Event streams from programs: the ring buffer reader gets every record in order under a
burst of 100,000 (while the producer runs concurrently), wraps around a small ring, skips
discarded records; the perf buffer reader gets every bpf_perf_event_output sample."""

from __future__ import annotations

import threading

import pytest

from pybpf import kernel
from pybpf.asm import assemble
from pybpf.errors import UsageError
from pybpf.kernel.perfbuf import PerfBuffer
from pybpf.kernel.ringbuf import RingBuffer

pytestmark = pytest.mark.kernel

PACKET = bytes(14)


def emit_sequence(ring_bytes: int, helper: str = "ringbuf") -> str:
    """A socket filter that takes the next sequence number and outputs it as 8 bytes."""
    if helper == "ringbuf":
        declare = f".map events ringbuf key=0 value=0 max_entries={ring_bytes}"
        output = """
    r1 = events ll
    r2 = r10
    r2 += -16
    r3 = 8
    r4 = 0
    call 130
"""
    else:
        declare = ".map events perf_event_array key=4 value=4 max_entries=0"
        output = """
    r1 = r6
    r2 = events ll
    r3 = 0xffffffff ll
    r4 = r10
    r4 += -16
    r5 = 8
    call 25
"""
    return f"""
    {declare}
    .map seq array key=4 value=8 max_entries=1
    r6 = r1
    *(u32 *)(r10 - 4) = 0
    r2 = r10
    r2 += -4
    r1 = seq ll
    call 1
    if r0 == 0 goto out
    r1 = 1
    r1 = atomic_fetch_add((u64 *)(r0 + 0), r1)
    *(u64 *)(r10 - 16) = r1
    {output}
out:
    r0 = 0
    exit
"""


def seqs(records) -> list[int]:
    return [int.from_bytes(r, "little") for r in records]


def test_a_burst_of_100000_ring_buffer_events_arrives_in_order_with_nothing_lost():
    with kernel.load_program(assemble(emit_sequence(4 << 20))) as prog, \
            RingBuffer(prog.map("events")) as ring:
        producer = threading.Thread(target=prog.test_run, args=(PACKET,),
                                    kwargs={"repeat": 100_000})
        producer.start()
        records = ring.read(100_000, timeout=10.0)
        producer.join()
        assert seqs(records) == list(range(100_000))
        assert ring.available() == 0


def test_the_ring_buffer_reader_wraps_around_a_small_ring():
    with kernel.load_program(assemble(emit_sequence(4096))) as prog, \
            RingBuffer(prog.map("events")) as ring:
        got = []
        for _ in range(50):                      # 50 x 100 records of 16 bytes through 4 KiB
            prog.test_run(PACKET, repeat=100)
            got.extend(ring.drain())
        assert seqs(got) == list(range(5000))


def test_the_ring_buffer_callback_form_and_epoll_wakeup():
    with kernel.load_program(assemble(emit_sequence(1 << 16))) as prog, \
            RingBuffer(prog.map("events")) as ring:
        assert not ring.poll(timeout=0.01)
        prog.test_run(PACKET, repeat=3)
        assert ring.poll(timeout=1.0)
        seen = []
        ring.drain(callback=lambda rec: seen.append(rec))
        assert seqs(seen) == [0, 1, 2]


def test_a_ring_buffer_reader_refuses_other_map_types():
    with kernel.KernelMap.create(
            __import__("pybpf.program").program.MapSpec("h", "hash", 4, 4, 1)) as m:
        with pytest.raises(UsageError, match="not a ringbuf"):
            RingBuffer(m)


def test_perf_buffer_samples_arrive_from_bpf_perf_event_output():
    with kernel.load_program(assemble(emit_sequence(0, "perf"))) as prog, \
            PerfBuffer(prog.map("events"), pages=16) as perf:
        prog.test_run(PACKET, repeat=500)
        samples = []
        for _ in range(20):
            samples.extend(perf.poll(timeout=0.2))
            if len(samples) >= 500:
                break
        assert sorted(seqs(s.data for s in samples)) == list(range(500)) and perf.lost == 0


MIXED = """
    .map events ringbuf key=0 value=0 max_entries=4096
    .map seq array key=4 value=8 max_entries=1
    *(u32 *)(r10 - 4) = 0
    r2 = r10
    r2 += -4
    r1 = seq ll
    call 1
    if r0 == 0 goto out
    r1 = 1
    r1 = atomic_fetch_add((u64 *)(r0 + 0), r1)
    r6 = r1
    *(u64 *)(r10 - 16) = r1
    *(u64 *)(r10 - 24) = r1
    r3 = r1
    r3 &= 7
    r3 += 1
    r1 = events ll
    r2 = r10
    r2 += -24
    r4 = 0
    r7 = r6
    r7 %= 3
    if r7 == 0 goto reserve
    call 130
    goto out
reserve:
    r1 = events ll
    r2 = 8
    r3 = 0
    call 131
    if r0 == 0 goto out
    *(u64 *)(r0 + 0) = r6
    r1 = r0
    r2 = 0
    call 133
out:
    r0 = 0
    exit
"""


def test_records_of_mixed_sizes_and_discarded_records_are_read_correctly():
    """Sizes 1..8 written with bpf_ringbuf_output; every third reserved and discarded."""
    with kernel.load_program(assemble(MIXED)) as prog, RingBuffer(prog.map("events")) as ring:
        got = []
        for _ in range(30):
            prog.test_run(PACKET, repeat=40)
            got.extend(ring.drain())
        want = [(n & 7) + 1 for n in range(1200) if n % 3]
        assert [len(r) for r in got] == want
        assert [r[0] for r in got] == [n & 0xFF for n in range(1200) if n % 3]
