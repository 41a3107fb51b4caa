"""The clang-compiled fixture objects (tests/fixtures/*.c) run unmodified in pybpf's interpreter
with their section's program type and give the kernel's results on the same packets: return
values, the packets as the programs left them, and the maps' contents afterwards."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from pybpf.elf import load_object
from pybpf.elf.collection import KernelCollection, VMCollection
from pybpf.pytest_plugin import compile_c, find_clang

from .compare import frame, ipv4

pytestmark = pytest.mark.kernel

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PACKET_TYPES = {"xdp", "sched_cls", "socket_filter"}
#: a ring buffer is drained by a consumer (tests/maps/test_ringbuf.py); a prog_array reads back
#: program ids in the kernel
NOT_COMPARED_MAPS = {"ringbuf", "prog_array", "array_of_maps", "hash_of_maps"}


def ipv6(next_header: int, payload: bytes = b"") -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, 64,
                       b"\xfe\x80" + bytes(13) + b"\1", b"\xfe\x80" + bytes(13) + b"\2") + payload


PACKETS = [
    frame(payload=ipv4(17, payload=b"udp datagram....")),
    frame(payload=ipv4(6, dst=b"\xc0\xa8\x01\x07", payload=b"tcp segment.....")),
    frame(payload=ipv4(1, dst=b"\x0a\x01\x02\x03", payload=b"\x08\0" + bytes(30))),
    frame(payload=ipv4(17, dst=b"\xc0\xa8\x00\x09", payload=bytes(range(64)))),
    frame(dest=b"\xff" * 6, ethertype=0x0806, payload=bytes(28)),
    frame(ethertype=0x86DD, payload=ipv6(58, bytes(16))),
    frame(payload=ipv4(6))[:14 + 20],
    frame(ethertype=0x88B5)[:14],
]

FIXTURE_NAMES = ["xdp_drop_proto", "tc_edit", "socket_filter", "tail_call", "loops",
                 "packet_counter", "lpm_firewall", "bpf2bpf", "globals", "legacy_maps",
                 "map_in_map", "ringbuf"]


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    if find_clang() is None:
        pytest.skip("clang is not installed")
    out = tmp_path_factory.mktemp("progtype-fixtures")
    return {name: compile_c(FIXTURES / f"{name}.c", out) for name in FIXTURE_NAMES}


def map_contents(maps, spec) -> dict[str, list]:
    contents = {}
    for name, m in maps.items():
        if spec.maps[name].type in NOT_COMPARED_MAPS or name.startswith(".rodata"):
            continue
        try:
            items = m.items()
        except Exception:       # a map type without iteration (prog_array in the VM, ...)
            continue
        contents[name] = sorted((bytes(k), bytes(v) if isinstance(v, (bytes, bytearray))
                                 else repr(v)) for k, v in items
                                if isinstance(v, (bytes, bytearray)))
    return contents


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_programs_give_the_kernels_results_on_every_packet(objects, name):
    spec = load_object(str(objects[name]))
    kspec = load_object(str(objects[name]))
    runnable = [p for p, prog in spec.programs.items() if prog.prog_type in PACKET_TYPES]
    assert runnable
    with KernelCollection(kspec) as kc, VMCollection(spec) as vc:
        for prog in runnable:
            for i, packet in enumerate(PACKETS):
                theirs = kc.programs[prog].test_run(packet)
                ours = vc.programs[prog].test_run(packet)
                assert ours.retval == theirs.retval, (prog, i)
                assert ours.data_out == theirs.data_out, (prog, i)
        assert map_contents(vc.maps, spec) == map_contents(kc.maps, spec)


@st.composite
def frames(draw):
    kind = draw(st.sampled_from(["ipv4", "ipv6", "arp", "other"]))
    payload = draw(st.binary(max_size=80))
    if kind == "ipv4":
        dst = bytes(draw(st.lists(st.integers(0, 255), min_size=4, max_size=4)))
        return frame(payload=ipv4(draw(st.sampled_from([1, 6, 17, 47])), dst=dst,
                                  payload=payload))
    if kind == "ipv6":
        return frame(ethertype=0x86DD, payload=ipv6(draw(st.sampled_from([6, 17, 58])),
                                                    payload))
    if kind == "arp":
        return frame(ethertype=0x0806, payload=payload)
    return frame(ethertype=draw(st.integers(0x0600, 0xFFFF).filter(
        lambda t: t not in (0x0800, 0x86DD))), payload=payload)


@pytest.fixture(scope="module")
def loaded(objects):
    names = ["xdp_drop_proto", "tc_edit", "lpm_firewall", "packet_counter", "tail_call"]
    pairs = {}
    kcs = []
    try:
        for name in names:
            kc = KernelCollection(load_object(str(objects[name])))
            kcs.append(kc)
            pairs[name] = (kc, VMCollection(load_object(str(objects[name]))))
        yield pairs
    finally:
        for kc in kcs:
            kc.close()


@settings(max_examples=30, deadline=None)
@given(st.lists(frames(), min_size=1, max_size=4))
def test_fixture_programs_match_the_kernel_on_generated_frames(loaded, packets):
    for name, (kc, vc) in loaded.items():
        for prog, program in vc.spec.programs.items():
            if program.prog_type not in PACKET_TYPES:
                continue
            for packet in packets:
                theirs = kc.programs[prog].test_run(packet)
                ours = vc.programs[prog].test_run(packet)
                assert (ours.retval, ours.data_out) == (theirs.retval, theirs.data_out), name
        assert map_contents(vc.maps, vc.spec) == map_contents(kc.maps, vc.spec), name
