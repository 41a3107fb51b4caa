"""Kernel maps behind the dict-like API: element flags and errnos as the kernel answers,
per-CPU values, keyless maps, batches, freeze, pinning, mmap."""

from __future__ import annotations

import errno
import os

import pytest

from pybpf.errors import MapError
from pybpf.kernel import KernelMap, features, uapi
from pybpf.kernel.maps import iter_map_ids
from pybpf.program import MapSpec

pytestmark = pytest.mark.kernel


def u32(n):
    return n.to_bytes(4, "little")


def u64(n):
    return n.to_bytes(8, "little")


@pytest.fixture
def hash4():
    with KernelMap.create(MapSpec("h", "hash", 4, 8, 4)) as m:
        yield m


def test_update_flags_follow_the_kernel_noexist_and_exist(hash4):
    hash4.update(1, 10, uapi.NOEXIST)
    with pytest.raises(MapError) as info:
        hash4.update(1, 11, uapi.NOEXIST)
    assert info.value.errno == errno.EEXIST
    with pytest.raises(MapError) as info:
        hash4.update(2, 11, uapi.EXIST)
    assert info.value.errno == errno.ENOENT
    hash4.update(1, 12, uapi.EXIST)
    assert hash4[1] == u64(12)


def test_a_full_hash_refuses_new_keys_with_e2big(hash4):
    for k in range(4):
        hash4[k] = k
    with pytest.raises(MapError) as info:
        hash4[99] = 1
    assert info.value.errno == errno.E2BIG
    hash4[3] = 33                                      # replacing still works
    assert len(hash4) == 4


def test_dict_api_lookup_contains_delete_iterate(hash4):
    with pytest.raises(MapError) as info:
        hash4.lookup(5)
    assert info.value.errno == errno.ENOENT and 5 not in hash4 and hash4.get(5) is None
    with pytest.raises(KeyError):
        hash4[5]
    hash4[5] = 50
    hash4[6] = 60
    assert 5 in hash4 and dict(hash4.items()) == {u32(5): u64(50), u32(6): u64(60)}
    assert set(hash4.keys()) == {u32(5), u32(6)}
    del hash4[5]
    with pytest.raises(KeyError):
        del hash4[5]
    with pytest.raises(MapError) as info:
        hash4.delete(5)
    assert info.value.errno == errno.ENOENT
    assert hash4.get_next_key(None) == u32(6)
    with pytest.raises(MapError) as info:
        hash4.get_next_key(6)
    assert info.value.errno == errno.ENOENT


def test_wrong_sizes_are_refused_before_the_kernel_sees_them(hash4):
    with pytest.raises(MapError, match="key of map 'h' must be 4 bytes"):
        hash4[b"\x01"] = 1
    with pytest.raises(MapError, match="does not fit"):
        hash4[1] = 1 << 70


def test_array_elements_exist_from_the_start_and_cannot_be_deleted():
    with KernelMap.create(MapSpec("a", "array", 4, 4, 3)) as arr:
        assert list(arr.items()) == [(u32(i), u32(0)) for i in range(3)]
        with pytest.raises(MapError) as info:
            arr.delete(0)
        assert info.value.errno == errno.EINVAL
        with pytest.raises(MapError) as info:
            arr[3] = 1
        assert info.value.errno == errno.E2BIG
        with pytest.raises(MapError) as info:
            arr.update(0, 1, uapi.NOEXIST)
        assert info.value.errno == errno.EEXIST


def test_percpu_maps_hold_one_value_per_possible_cpu():
    n = features.num_possible_cpus()
    with KernelMap.create(MapSpec("p", "percpu_hash", 4, 4, 8)) as m:
        m[1] = [u32(i + 1) for i in range(n)]
        assert m[1] == [u32(i + 1) for i in range(n)]
        m[2] = 9                                         # one value for every CPU
        assert m[2] == [u32(9)] * n
        with pytest.raises(MapError):
            m[3] = [u32(0)] * (n + 1)


def test_queue_and_stack_maps_push_and_pop_in_their_order():
    with KernelMap.create(MapSpec("q", "queue", 0, 4, 4)) as q, \
            KernelMap.create(MapSpec("s", "stack", 0, 4, 4)) as s:
        for v in (1, 2, 3):
            q.push(v)
            s.push(v)
        assert q.peek() == u32(1) and s.peek() == u32(3)
        assert [q.pop() for _ in range(3)] == [u32(1), u32(2), u32(3)]
        assert [s.pop() for _ in range(3)] == [u32(3), u32(2), u32(1)]
        for empty in (q, s):
            with pytest.raises(MapError) as info:
                empty.pop()
            assert info.value.errno == errno.ENOENT


def test_lpm_trie_finds_the_longest_prefix():
    with KernelMap.create(MapSpec("lpm", "lpm_trie", 8, 4, 16, flags=uapi.F_NO_PREALLOC)) as t:
        t[u32(8) + bytes([10, 0, 0, 0])] = 8
        t[u32(24) + bytes([10, 1, 2, 0])] = 24
        assert t[u32(32) + bytes([10, 1, 2, 3])] == u32(24)
        assert t[u32(32) + bytes([10, 9, 9, 9])] == u32(8)
        assert t.get(u32(32) + bytes([11, 0, 0, 0])) is None


def test_lru_hash_evicts_instead_of_failing_when_full():
    with KernelMap.create(MapSpec("lru", "lru_hash", 4, 4, 64)) as m:
        for k in range(1000):
            m[k] = k
        assert 0 < len(m) <= 64 and m[999] == u32(999)


def test_batch_operations_move_many_elements_per_call():
    with KernelMap.create(MapSpec("b", "hash", 4, 4, 1024)) as m:
        assert m.update_batch({k: k * 2 for k in range(500)}) == 500
        pairs, token = m.lookup_batch(batch_size=64)
        assert token is None and dict(pairs) == {u32(k): u32(k * 2) for k in range(500)}
        first, token = m.lookup_batch(count=100, batch_size=64)
        rest, end = m.lookup_batch(token)
        assert end is None and len(first) >= 100 and dict(first + rest) == dict(pairs)
        assert m.delete_batch(range(100)) == 100 and len(m) == 400
        drained, _ = m.lookup_batch(delete=True)
        assert len(drained) == 400 and len(m) == 0


def test_a_frozen_map_is_read_only_from_user_space():
    with KernelMap.create(MapSpec("f", "array", 4, 4, 1)) as m:
        m[0] = 5
        m.freeze()
        with pytest.raises(MapError) as info:
            m[0] = 6
        assert info.value.errno == errno.EPERM
        assert m[0] == u32(5)


def test_a_pinned_map_survives_its_fd_and_is_removed_by_unpin():
    path = f"/sys/fs/bpf/pybpf_test_{os.getpid()}"
    with KernelMap.create(MapSpec("pinned", "hash", 4, 4, 4)) as m:
        m[1] = 2
        m.pin(path)
        mid = m.id
    try:
        with KernelMap.from_pin(path) as again:
            assert again.id == mid and again[1] == u32(2) and again.name == "pinned"
    finally:
        os.unlink(path)
    assert not os.path.exists(path)


def test_an_mmapable_array_shares_memory_with_the_kernel():
    with KernelMap.create(MapSpec("mm", "array", 4, 4, 4, flags=uapi.F_MMAPABLE)) as m:
        mem = m.mmap()
        mem[16:20] = u32(77)                             # element 2 (values padded to 8)
        assert m[2] == u32(77)
        m[3] = 5
        assert mem[12:16] == u32(0) and mem[24:28] == u32(5)


def test_mmap_of_a_map_that_cannot_be_mapped_is_refused_clearly(hash4):
    with pytest.raises(MapError, match="F_MMAPABLE"):
        hash4.mmap()


def test_a_bad_spec_names_the_map_and_the_kernels_errno():
    with pytest.raises(MapError) as info:
        KernelMap.create(MapSpec("rb", "ringbuf", 0, 0, 1000))
    assert "rb" in str(info.value) and "EINVAL" in str(info.value)
    assert "power-of-two" in str(info.value)


def test_map_in_map_takes_its_inner_map_from_the_spec():
    inner = MapSpec("inner", "array", 4, 4, 1)
    with KernelMap.create(MapSpec("outer", "array_of_maps", 4, 4, 2, inner=inner)) as outer, \
            KernelMap.create(inner) as member:
        outer[0] = member.fd
        assert outer[0] == u32(member.id)              # the kernel answers with the map id


def test_info_and_map_ids_describe_the_live_map(hash4):
    info = hash4.info()
    assert (info.type, info.key_size, info.value_size, info.max_entries) == ("hash", 4, 8, 4)
    assert info.id in set(iter_map_ids())
    with KernelMap.from_id(info.id) as again:
        again[7] = 1
        assert hash4[7] == u64(1)


@pytest.mark.parametrize("kind", ["hash", "array", "percpu_hash", "percpu_array", "lru_hash",
                                  "lru_percpu_hash", "lpm_trie", "ringbuf", "perf_event_array",
                                  "prog_array", "queue", "stack", "bloom_filter",
                                  "array_of_maps", "hash_of_maps", "devmap", "sockmap",
                                  "cpumap", "xskmap", "sockhash", "devmap_hash", "stack_trace",
                                  "cgroup_array"])
def test_every_vm_map_type_can_be_created_in_the_kernel(kind):
    shapes = {"lpm_trie": (8, 4, 4, uapi.F_NO_PREALLOC), "ringbuf": (0, 0, 4096, 0),
              "queue": (0, 4, 4, 0), "stack": (0, 4, 4, 0), "bloom_filter": (0, 4, 4, 0),
              "stack_trace": (4, 64, 4, 0), "perf_event_array": (4, 4, 0, 0)}
    key, value, entries, flags = shapes.get(kind, (4, 4, 4, 0))
    inner = MapSpec("inner", "array", 4, 4, 1) if kind.endswith("_of_maps") else None
    with KernelMap.create(MapSpec(kind, kind, key, value, entries, flags, inner=inner)) as m:
        assert m.info().type == kind
    assert features.has_map_type(kind)
