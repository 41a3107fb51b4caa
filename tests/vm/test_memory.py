"""Memory regions: native buffers shared with ctypes, checked access, fast lookups.

The reference for the bytes is the native memory itself (read and written with ctypes at the
region's address), since that is what the JIT and the maps see.
"""

from __future__ import annotations

import ctypes

import pytest

from pybpf.errors import VMError
from pybpf.memory import GUARD_BYTES, Memory, Region


def test_a_region_is_native_memory_shared_with_ctypes():
    region = Region.allocate("r", 16, data=b"\x01\x02\x03")
    assert ctypes.string_at(region.address, 4) == b"\x01\x02\x03\x00"
    ctypes.memmove(region.address + 8, b"\xaa\xbb", 2)
    mem = Memory()
    mem.add(region)
    assert mem.read(region.address + 8, 2) == b"\xaa\xbb"
    mem.store(region.address, 4, 0x11223344)
    assert ctypes.string_at(region.address, 4) == (0x11223344).to_bytes(4, "little")


def test_loads_and_stores_are_little_endian_and_truncate():
    mem = Memory()
    r = mem.add(Region.allocate("r", 16))
    mem.store(r.address, 8, -1)
    assert mem.load(r.address, 8) == 0xFFFF_FFFF_FFFF_FFFF
    mem.store(r.address, 2, 0x12345)
    assert mem.read(r.address, 3) == b"\x45\x23\xff"
    assert mem.load(r.address, 3) == 0xFF2345


@pytest.mark.parametrize("offset,size", [(-1, 1), (15, 2), (16, 1), (8, 9), (-8, 8)])
def test_an_access_not_entirely_inside_a_region_faults_with_its_address(offset, size):
    mem = Memory()
    r = mem.add(Region.allocate("r", 16))
    with pytest.raises(VMError) as info:
        mem.load(r.address + offset, size)
    assert info.value.address == r.address + offset


def test_a_write_to_a_read_only_region_faults_and_a_read_does_not():
    mem = Memory()
    r = mem.add(Region.allocate("text", 8, writable=False, data=b"abcdefgh"))
    assert mem.read(r.address, 8) == b"abcdefgh"
    with pytest.raises(VMError) as info:
        mem.write(r.address + 1, b"x")
    assert "read-only" in info.value.message


def test_lookup_finds_the_right_region_among_many():
    mem = Memory()
    regions = [mem.add(Region.allocate(f"r{i}", 8 + i)) for i in range(50)]
    for r in reversed(regions):
        found, off = mem.find(r.address + r.size - 1, 1)
        assert found is r and off == r.size - 1
    assert mem.region_at(regions[7].address) is regions[7]


def test_removed_regions_are_no_longer_accessible():
    mem = Memory()
    r = mem.add(Region.allocate("r", 8))
    mem.load(r.address, 8)              # now in the last-hit cache
    mem.remove(r)
    with pytest.raises(VMError):
        mem.load(r.address, 8)


def test_overlapping_regions_are_refused():
    mem = Memory()
    r = mem.add(Region.allocate("r", 32))
    sub = Region("sub", r.address + 8, 8, True, None)
    with pytest.raises(ValueError):
        mem.add(sub)


def test_allocated_regions_have_guard_bytes_so_small_overruns_always_fault():
    mem = Memory()
    regions = [mem.add(Region.allocate(f"r{i}", 8)) for i in range(20)]
    for r in regions:
        for addr in (r.address - GUARD_BYTES, r.end, r.end + GUARD_BYTES - 1):
            with pytest.raises(VMError):
                mem.load(addr, 1)


def test_a_region_over_foreign_memory_reads_it_in_place():
    buf = ctypes.create_string_buffer(b"hello world", 11)
    region = Region("foreign", ctypes.addressof(buf), 11, False, None)
    mem = Memory()
    mem.add(region)
    assert mem.read_cstring(region.address + 6) == b"world"
    assert mem.read(region.address, 5) == b"hello"
