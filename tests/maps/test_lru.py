"""LRU hash maps evict like the kernel's in the ways that are guaranteed: the map never holds
more than max_entries elements, a key just written is present, and a key a program keeps
looking up survives a flood of new keys. (The kernel's LRU is approximate and evicts in
batches, so which cold key goes first is not compared.)"""

from __future__ import annotations

import pytest

from pybpf.asm import assemble
from pybpf.maps import create_map
from pybpf.program import MapSpec
from pybpf.vm import Interpreter

from .harness import kernel_map, one_cpu

pytestmark = pytest.mark.kernel

HOT = 7777
PACKET = bytes(64)

LOOKUP_HOT = f"""
.map lru {{kind}} key=4 value=8 max_entries={{n}}
    r1 = {HOT}
    *(u32 *)(r10 - 4) = r1
    r2 = r10
    r2 += -4
    r1 = lru ll
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r0 = 1
out:
    exit
"""


@pytest.mark.parametrize("kind", ["lru_hash", "lru_percpu_hash"])
def test_lru_never_exceeds_max_entries_and_keeps_the_newest_key_like_the_kernel(kind):
    spec = MapSpec("lru", kind, 4, 8, 32)
    ours = create_map(spec)
    with one_cpu(), kernel_map(spec) as km:
        for i in range(200):
            for m in (ours, km):
                m.update(i, i * 3)
                assert len(m) <= 32
                assert m.get(i) is not None
        assert len(ours) == 32 and 0 < len(km) <= 32


@pytest.mark.parametrize("kind", ["lru_hash", "lru_percpu_hash"])
def test_lru_keeps_a_key_that_a_program_keeps_using_like_the_kernel(kind):
    from pybpf import kernel

    n = 64
    program = assemble(LOOKUP_HOT.format(kind=kind, n=n))
    spec = program.maps[0]
    ours = create_map(spec)
    vm = Interpreter(program, maps=[ours])
    with one_cpu(), kernel_map(spec) as km, kernel.load_program(program, maps=[km]) as kp:
        for m in (ours, km):
            m.update(HOT, 1)
        for i in range(6 * n):
            for m in (ours, km):
                m.update(i, i)
            assert vm.run(PACKET) == kp.test_run(PACKET).retval == 1, i
        assert HOT in ours and HOT in km


def test_lookups_from_python_do_not_count_as_use():
    lru = create_map(MapSpec("lru", "lru_hash", 4, 4, 2))
    lru[1] = 1
    lru[2] = 2
    assert lru[1] == (1).to_bytes(4, "little")  # a user-space lookup: not a use
    lru[3] = 3
    assert 1 not in lru and 2 in lru and 3 in lru


@pytest.mark.parametrize("kind", ["lru_hash", "lru_percpu_hash"])
def test_per_cpu_lru_lists_hold_each_cpus_share_like_the_kernel(kind):
    from pybpf.maps import possible_cpus

    spec = MapSpec("lru", kind, 4, 8, 33, flags=2)        # BPF_F_NO_COMMON_LRU
    ours = create_map(spec)
    with one_cpu(), kernel_map(spec) as km:
        assert ours.max_entries == km.info().max_entries   # rounded up to a CPU multiple
        share = ours.max_entries // possible_cpus()
        for i in range(100):
            for m in (ours, km):
                m.update(i, i)
                assert m.get(i) is not None
        assert len(ours) == share
        assert share - 4 <= len(km) <= share               # the kernel evicts 4 at a time
