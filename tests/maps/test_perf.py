"""perf_event_array: bpf_perf_event_output's error codes match the kernel's (no perf event in
the slots), and samples reach the Python reader padded as perf delivers them."""

from __future__ import annotations

import pytest

from pybpf.asm import assemble
from pybpf.maps import create_map, set_current_cpu
from pybpf.vm import Interpreter

from .harness import one_cpu

OUTPUT = """
.map events perf_event_array key=4 value=4 max_entries=2
    r6 = r1
    r1 = 0x0102030405060708 ll
    *(u64 *)(r10 - 8) = r1
    r1 = r6
    r2 = events ll
    r3 = {flags} ll
    r4 = r10
    r4 += -8
    r5 = 5
    call bpf_perf_event_output
    exit
"""

FLAGS = [0, 1, 2, 5, 0xFFFFFFFF, 1 << 60, (4 << 32) | 0xFFFFFFFF, (4000 << 32) | 1]


def program(flags: int):
    return assemble(OUTPUT.format(flags=flags))


@pytest.mark.kernel
@pytest.mark.parametrize("flags", FLAGS)
def test_perf_event_output_errors_match_the_kernel(flags):
    from pybpf import kernel

    prog = program(flags)
    packet = bytes(64)
    with one_cpu():
        want = kernel.test_run(prog, packet).retval
    got = Interpreter(prog).run(packet[14:]) & 0xFFFFFFFF
    assert got == want


def test_samples_reach_the_reader_with_perf_padding():
    prog = program(0xFFFFFFFF)
    perf = create_map(prog.maps[0])
    vm = Interpreter(prog, maps=[perf])
    samples = []
    reader = perf.reader(lambda cpu, data: samples.append((cpu, data)))
    set_current_cpu(1)
    try:
        assert vm.run(b"abcdefgh") == 0
    finally:
        set_current_cpu(0)
    assert vm.run(b"abcdefgh") == 0
    assert reader.poll() == 2
    # raw size padded so that 4 + size is a multiple of 8: 5 bytes -> 12; slot order
    assert samples == [(0, bytes.fromhex("0807060504") + bytes(7)),
                       (1, bytes.fromhex("0807060504") + bytes(7))]


@pytest.mark.kernel
@pytest.mark.parametrize("size", [1, 4, 5, 7, 8])
def test_samples_match_what_the_kernel_delivers_to_a_perf_ring(size):
    from pybpf import kernel
    from pybpf.maps import current_cpu

    from .harness import KernelPerfBuffer

    text = OUTPUT.format(flags=0xFFFFFFFF).replace("r5 = 5", f"r5 = {size}")
    prog = assemble(text)
    perf = create_map(prog.maps[0])
    vm = Interpreter(prog, maps=[perf])
    reader = perf.reader()
    with one_cpu():
        cpu = current_cpu()
        event = KernelPerfBuffer(cpu)
        try:
            with kernel.KernelMap.create(prog.maps[0]) as km, \
                    kernel.load_program(prog, maps=[km]) as kp:
                km.update(cpu, event.fd)
                for _ in range(3):
                    assert vm.run(b"x" * 50) & 0xFFFFFFFF == kp.test_run(bytes(64)).retval == 0
                want = event.samples()
        finally:
            event.close()
    assert [data for _, data in reader] == want
    assert len(want) == 3
