"""The Python face of live maps: dict-like access with bytes, ints and ctypes structures,
per-CPU values as lists, errors with the kernel's errno, and bad input leaving the map as it
was. Values live at stable native addresses inside the regions the map exposes."""

from __future__ import annotations

import ctypes

import pytest

from pybpf.errors import MapError
from pybpf.maps import create_map, map_from_handle, possible_cpus
from pybpf.program import MapSpec


class Flow(ctypes.Structure):
    _fields_ = [("saddr", ctypes.c_uint32), ("daddr", ctypes.c_uint32),
                ("sport", ctypes.c_uint16), ("dport", ctypes.c_uint16)]


class Stats(ctypes.Structure):
    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]


def test_keys_and_values_can_be_bytes_ints_or_ctypes_structures():
    m = create_map(MapSpec("flows", "hash", ctypes.sizeof(Flow), ctypes.sizeof(Stats), 8))
    m[Flow(1, 2, 3, 4)] = Stats(10, 1500)
    m[bytes(Flow(5, 6, 7, 8))] = bytes(Stats(1, 60))
    assert Stats.from_buffer_copy(m[Flow(1, 2, 3, 4)]).bytes == 1500
    m.key_type, m.value_type = Flow, Stats
    got = {(k.saddr, k.dport): v.packets for k, v in m.items()}
    assert got == {(1, 4): 10, (5, 8): 1}
    counters = create_map(MapSpec("c", "array", 4, 8, 4))
    counters[2] = 7
    counters.value_type = int
    assert counters[2] == 7 and counters[0] == 0 and len(counters) == 4


def test_per_cpu_values_are_lists_with_one_value_per_possible_cpu():
    m = create_map(MapSpec("p", "percpu_hash", 4, 4, 4))
    n = possible_cpus()
    m[1] = list(range(n))
    m.value_type = int
    assert m[1] == list(range(n))
    m[2] = 9                                   # one value for every CPU
    assert m[2] == [9] * n
    with pytest.raises(MapError) as info:
        m[3] = [1] * (n + 1)
    assert info.value.errno == 22 and 3 not in m


@pytest.mark.parametrize("bad", [
    lambda m: m.update(b"\x01\x00\x00", b"\x00" * 8),          # key too short
    lambda m: m.update(1, b"\x00" * 9),                         # value too long
    lambda m: m.update(1, 2, flags=3),                          # bad flags
    lambda m: m.update(1 << 40, 1),                             # int key does not fit
    lambda m: m.update("one", 1),                               # not a key at all
    lambda m: m.update(99, 1),                                  # full map (E2BIG)
    lambda m: m.update(1, 5, flags=1),                          # exists (EEXIST)
    lambda m: m.delete(42),                                     # ENOENT
])
def test_bad_input_is_a_map_error_and_leaves_the_map_as_it_was(bad):
    m = create_map(MapSpec("h", "hash", 4, 8, 2))
    m[1] = 10
    m[2] = 20
    before = m.items()
    addresses = {k: m.lookup_address(k) for k, _ in before}
    with pytest.raises(MapError) as info:
        bad(m)
    assert info.value.errno in (2, 7, 17, 22)
    assert m.items() == before
    assert {k: m.lookup_address(k) for k, _ in before} == addresses


def test_lookup_raises_key_error_for_missing_keys_like_a_dict():
    m = create_map(MapSpec("h", "hash", 4, 4, 2))
    with pytest.raises(KeyError):
        m[5]
    assert m.get(5, "none") == "none" and 5 not in m
    with pytest.raises(KeyError):
        del m[5]


def test_value_addresses_are_stable_and_inside_the_map_regions():
    m = create_map(MapSpec("h", "hash", 4, 8, 16))
    for i in range(10):
        m[i] = i
    addrs = {i: m.lookup_address(i.to_bytes(4, "little")) for i in range(10)}
    for i in range(10):
        m[i] = i * 100                          # updates happen in place
    del m[3]
    m[42] = 1
    for i in (0, 1, 2, 4, 9):
        assert m.lookup_address(i.to_bytes(4, "little")) == addrs[i]
        region = next(r for r in m.regions() if r.contains(addrs[i], 8))
        off = addrs[i] - region.address
        assert int.from_bytes(region.view[off: off + 8], "little") == i * 100
    assert map_from_handle(m.handle) is m


def test_writes_through_a_value_address_are_seen_by_python():
    m = create_map(MapSpec("a", "array", 4, 8, 4))
    ctypes.c_uint64.from_address(m.lookup_address((2).to_bytes(4, "little"))).value = 77
    assert m[2] == (77).to_bytes(8, "little")


def test_array_delete_is_einval_and_get_next_key_walks_indices():
    m = create_map(MapSpec("a", "array", 4, 4, 3))
    with pytest.raises(MapError) as info:
        del m[0]
    assert info.value.errno == 22
    assert [int.from_bytes(k, "little") for k in m] == [0, 1, 2]
    assert m.get_next_key(7) == (0).to_bytes(4, "little")
    with pytest.raises(MapError) as info:
        m.get_next_key(2)
    assert info.value.errno == 2


def test_lpm_keys_can_be_given_as_prefix_and_address():
    m = create_map(MapSpec("r", "lpm_trie", 8, 4, 8, flags=1))
    m.value_type = int
    m[(8, "10.0.0.0")] = 1
    m[(24, "10.1.2.0")] = 2
    assert m[(32, "10.1.2.9")] == 2 and m[(32, "10.9.9.9")] == 1
    assert (32, "11.0.0.1") not in m


def test_map_in_map_values_are_live_maps_matching_the_template():
    inner = MapSpec("inner", "array", 4, 4, 2)
    outer = create_map(MapSpec("outer", "array_of_maps", 4, 4, 2, inner=inner))
    a = create_map(inner)
    outer[0] = a
    assert outer[0] is a
    assert outer.lookup_address((0).to_bytes(4, "little")) == a.handle
    with pytest.raises(MapError) as info:
        outer[1] = create_map(MapSpec("x", "array", 4, 8, 2))
    assert info.value.errno == 22
    hom = create_map(MapSpec("hom", "hash_of_maps", 4, 4, 2, inner=inner))
    hom[7] = a
    assert hom[7] is a and len(hom) == 1


def test_queue_and_stack_take_oldest_and_newest():
    q = create_map(MapSpec("q", "queue", 0, 4, 3))
    s = create_map(MapSpec("s", "stack", 0, 4, 3))
    for m in (q, s):
        m.value_type = int
        for v in (1, 2, 3):
            m.push(v)
        m.push(4, 2)       # BPF_EXIST: overwrite the oldest
    assert [q.pop() for _ in range(3)] == [2, 3, 4]
    assert [s.pop() for _ in range(3)] == [4, 3, 2]


INNER_CANDIDATES = [
    ("array", 4, 4, 2, 0), ("array", 4, 8, 2, 0), ("array", 4, 4, 3, 0), ("hash", 4, 4, 2, 0),
    ("array", 4, 4, 2, 4096), ("array", 4, 4, 5, 4096), ("array", 4, 4, 2, 1024),
]


@pytest.mark.kernel
@pytest.mark.parametrize("template_flags", [0, 4096])
@pytest.mark.parametrize("outer_kind", ["array_of_maps", "hash_of_maps"])
def test_inner_maps_must_match_the_template_like_the_kernel(outer_kind, template_flags):
    from pybpf.kernel import KernelMap

    template = MapSpec("inner", "array", 4, 4, 2, template_flags)
    outer_spec = MapSpec("outer", outer_kind, 4, 4, 4, inner=template)
    ours = create_map(outer_spec)
    with KernelMap.create(outer_spec) as kouter:
        for kind, key, value, entries, flags in INNER_CANDIDATES:
            spec = MapSpec("cand", kind, key, value, entries, flags)
            with KernelMap.create(spec) as kinner:
                try:
                    kouter.update(1, kinner.fd)
                    want = None
                except MapError as exc:
                    want = exc.errno
            try:
                ours.update(1, create_map(spec))
                got = None
            except MapError as exc:
                got = exc.errno
            assert got == want, spec


@pytest.mark.kernel
def test_per_cpu_values_also_accept_the_syscall_layout_of_8_byte_slots():
    from pybpf.kernel import KernelMap

    n = possible_cpus()
    spec = MapSpec("p", "percpu_array", 4, 5, 2)
    values = [bytes([c + 1]) * 5 for c in range(n)]
    packed = b"".join(v + bytes(3) for v in values)   # round_up(5, 8) bytes per CPU
    ours = create_map(spec)
    ours.update(1, packed)
    with KernelMap.create(spec) as km:
        km.update(1, values)
        assert ours[1] == km[1] == values


@pytest.mark.kernel
@pytest.mark.parametrize("kind", ["hash_of_maps", "array_of_maps", "prog_array"])
def test_fd_maps_answer_user_space_like_the_kernel_when_empty(kind):
    from pybpf.kernel import KernelMap

    from .harness import kernel_outcome, outcome

    inner = MapSpec("i", "array", 4, 4, 2)
    spec = MapSpec("o", kind, 4, 4, 4, inner=inner if "maps" in kind else None)
    ours = create_map(spec)
    with KernelMap.create(spec) as km:
        for op in (lambda m: m.lookup_batch(), lambda m: m.delete_batch([1]),
                   lambda m: m.lookup_and_delete(1), lambda m: m.lookup(1),
                   lambda m: m.get_next_key(None), lambda m: m.delete(1)):
            want = kernel_outcome(lambda: op(km))
            if want == ("ok", None):
                want = ("err", 2)   # KernelMap's None for ENOENT
            got = outcome(lambda: op(ours))
            if got[0] == "ok" and isinstance(got[1], tuple):
                got = ("ok", (got[1][0], got[1][1]))
            assert got == want


@pytest.mark.kernel
@pytest.mark.parametrize("flags", [0, 8, 16, 128, 256])
@pytest.mark.parametrize("kind", ["hash", "array"])
def test_access_flags_and_freeze_answer_user_space_like_the_kernel(kind, flags):
    from pybpf.kernel import KernelMap

    from .harness import kernel_outcome, outcome

    spec = MapSpec("acc", kind, 4, 4, 4, flags)
    ours = create_map(spec)
    with KernelMap.create(spec) as km:
        steps = [lambda m: m.update(1, 5), lambda m: m.lookup(1), lambda m: m.delete(1),
                 lambda m: m.get_next_key(None), lambda m: m.freeze(),
                 lambda m: m.update(2, 6), lambda m: m.lookup(2), lambda m: m.freeze()]
        for step in steps:
            want = kernel_outcome(lambda: step(km))
            got = outcome(lambda: step(ours))
            if want == ("ok", None) and got[0] == "err" and got[1] == 2:
                want = got   # KernelMap answers None where bpf(2) said ENOENT
            assert got == want


def test_a_frozen_map_is_still_writable_by_programs():
    m = create_map(MapSpec("f", "array", 4, 8, 2))
    m.freeze()
    assert m.program_update((1).to_bytes(4, "little"), (7).to_bytes(8, "little"), 0) == 0
    assert m[1] == (7).to_bytes(8, "little")
    assert all(r.writable for r in m.regions())


BAD_INPUTS = [None, "x", 1.5, [1], b"", object(), -1, 1 << 70]
EVERY_KIND = [MapSpec("h", "hash", 4, 4, 4), MapSpec("a", "array", 4, 4, 4),
              MapSpec("p", "percpu_hash", 4, 4, 4), MapSpec("l", "lpm_trie", 8, 4, 4, flags=1),
              MapSpec("q", "queue", 0, 4, 4), MapSpec("b", "bloom_filter", 0, 4, 4),
              MapSpec("r", "ringbuf", 0, 0, 4096), MapSpec("pa", "prog_array", 4, 4, 4),
              MapSpec("pe", "perf_event_array", 4, 4, 4),
              MapSpec("am", "array_of_maps", 4, 4, 4, inner=MapSpec("i", "array", 4, 4, 4))]


@pytest.mark.parametrize("spec", EVERY_KIND, ids=lambda s: s.type)
def test_any_bad_argument_is_a_map_error_never_a_raw_exception(spec):
    m = create_map(spec)
    for x in BAD_INPUTS:
        calls = [lambda: m.update(x, 1), lambda: m.update(1, x), lambda: m.update(1, 1, x),
                 lambda: m.lookup(x), lambda: m.delete(x), lambda: m.get_next_key(x),
                 lambda: m[x], lambda: x in m, lambda: m.lookup_batch(x),
                 lambda: m.update_batch([(x, x)]), lambda: m.delete_batch([x]),
                 lambda: m.lookup_and_delete(x)]
        if hasattr(m, "push"):
            calls += [lambda: m.push(x), lambda: m.push(1, x)]
        for call in calls:
            try:
                call()
            except (MapError, KeyError):
                pass
