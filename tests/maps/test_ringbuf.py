"""The ring buffer: a program emitting records (output, reserve+submit, reserve+discard) gives
the same return values, positions and records as the kernel's ring buffer read through mmap,
including when the buffer fills up and when records wrap around its end."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.asm import assemble
from pybpf.errors import MapError
from pybpf.maps import create_map
from pybpf.program import MapSpec
from pybpf.vm import Interpreter

from .harness import NO_SHRINK, KernelRingReader, kernel_map

EMITTER = """
.map events ringbuf key=0 value=0 max_entries=4096
    r1 = 0x1122334455667788 ll
    *(u64 *)(r10 - 8) = r1
    r1 = 0x99aabbcc
    *(u64 *)(r10 - 16) = r1
    r1 = events ll
    r2 = r10
    r2 += -16
    r3 = 12
    r4 = 0
    call bpf_ringbuf_output
    r6 = r0
    if r6 != 0 goto out
    r1 = events ll
    r2 = 20
    r3 = 0
    call bpf_ringbuf_reserve
    if r0 == 0 goto fail
    r1 = 0x0102030405060708 ll
    *(u64 *)(r0 + 0) = r1
    *(u64 *)(r0 + 8) = r1
    *(u32 *)(r0 + 16) = w1
    r1 = r0
    r2 = 0
    call bpf_ringbuf_submit
    r1 = events ll
    r2 = 8
    r3 = 0
    call bpf_ringbuf_reserve
    if r0 == 0 goto fail
    r1 = r0
    r2 = 0
    call bpf_ringbuf_discard
    r1 = events ll
    r2 = 0
    call bpf_ringbuf_query
    r6 = r0
    r1 = events ll
    r2 = 3
    call bpf_ringbuf_query
    r0 <<= 16
    r0 |= r6
    exit
fail:
    r6 = -1
out:
    r0 = r6
    exit
"""

PACKET = bytes(64)


@pytest.mark.kernel
def test_ring_buffer_program_matches_the_kernel_through_fill_drain_and_wrap():
    from pybpf import kernel

    program = assemble(EMITTER)
    spec = program.maps[0]
    ours = create_map(spec)
    vm = Interpreter(program, maps=[ours])
    with kernel_map(spec) as km, kernel.load_program(program, maps=[km]) as kp:
        reader = KernelRingReader(km.fd, spec.max_entries)
        try:
            for rounds in (80, 30, 70, 10):   # 80 overflows 4096 bytes; the later ones wrap
                for _ in range(rounds):
                    assert vm.run(PACKET) & 0xFFFFFFFF == kp.test_run(PACKET).retval
                assert list(ours) == list(reader)
        finally:
            reader.close()


def test_consumer_iterates_callbacks_and_polls():
    rb = create_map(MapSpec("rb", "ringbuf", 0, 0, 4096))
    got = []
    consumer = rb.consumer(got.append)
    assert consumer.poll(0.01) == 0
    for i in range(5):
        assert rb.output(bytes([i]) * (i + 1)) == 0
    sample = rb.reserve(3)
    rb.view[sample - rb.data_address: sample - rb.data_address + 3] = b"abc"
    assert rb.output(b"after-busy") == 0
    assert consumer.poll(0) == 5          # stops at the record still reserved
    assert got == [bytes([i]) * (i + 1) for i in range(5)]
    rb.commit(sample, 0, discard=False)
    assert list(rb) == [b"abc", b"after-busy"]
    assert rb.query(0) == 0


def test_ring_buffer_size_must_be_a_power_of_two_page_multiple():
    for size in (0, 4095, 3 * 4096):
        with pytest.raises(MapError) as info:
            create_map(MapSpec("rb", "ringbuf", 0, 0, size))
        assert info.value.errno == 22


def test_poll_wakes_up_when_another_thread_submits():
    import threading
    import time

    rb = create_map(MapSpec("rb", "ringbuf", 0, 0, 4096))
    got = []

    def produce():
        time.sleep(0.05)
        rb.output(b"late record")

    thread = threading.Thread(target=produce)
    thread.start()
    start = time.monotonic()
    assert rb.consumer(got.append).poll(5.0) == 1
    thread.join()
    assert got == [b"late record"] and time.monotonic() - start < 4.0


def test_a_record_that_wraps_the_end_reads_back_whole():
    rb = create_map(MapSpec("rb", "ringbuf", 0, 0, 4096))
    assert rb.output(bytes(4000)) == 0
    assert list(rb) == [bytes(4000)]
    record = bytes(range(256)) * 2
    assert rb.output(record) == 0           # starts 4008 bytes in: runs past the end
    assert rb.query(3) - rb.query(2) == 520
    assert list(rb) == [record]


def emitter(sizes: list[int], discard_every: int) -> str:
    """A program that reserves records of the given sizes, fills them with a pattern, and
    submits (or discards every ``discard_every``-th); r0 = how many reservations failed."""
    lines = [".map events ringbuf key=0 value=0 max_entries=4096", "    r7 = 0"]
    for i, size in enumerate(sizes):
        lines += ["    r1 = events ll", f"    r2 = {size}", "    r3 = 0",
                  "    call bpf_ringbuf_reserve", f"    if r0 != 0 goto got{i}",
                  "    r7 += 1", f"    goto next{i}", f"got{i}:",
                  f"    r1 = {0x1000 + i}"]
        lines += [f"    *(u8 *)(r0 + {off}) = w1" for off in range(0, size, max(size // 4, 1))]
        commit = "discard" if discard_every and i % discard_every == 0 else "submit"
        lines += ["    r1 = r0", "    r2 = 0", f"    call bpf_ringbuf_{commit}", f"next{i}:"]
    lines += ["    r0 = r7", "    exit"]
    return "\n".join(lines)


@pytest.mark.kernel
@settings(max_examples=12, deadline=None, phases=NO_SHRINK,
          suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(1, 1500), min_size=1, max_size=5),
       discard_every=st.sampled_from([0, 2, 3]),
       schedule=st.lists(st.integers(0, 4), min_size=2, max_size=6))
def test_random_record_sizes_fill_and_wrap_like_the_kernel(sizes, discard_every, schedule):
    from pybpf import kernel

    program = assemble(emitter(sizes, discard_every))
    spec = program.maps[0]
    ours = create_map(spec)
    vm = Interpreter(program, maps=[ours])
    with kernel_map(spec) as km, kernel.load_program(program, maps=[km]) as kp:
        reader = KernelRingReader(km.fd, spec.max_entries)
        try:
            for runs in schedule:          # run a few times, then drain
                for _ in range(runs):
                    assert vm.run(PACKET) & 0xFFFFFFFF == kp.test_run(PACKET).retval
                assert list(ours) == list(reader)
        finally:
            reader.close()
