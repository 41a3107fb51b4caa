"""Hypothesis-generated operation sequences give the same results, errors and final contents on
a pybpf map as on a kernel map created through bpf(2) with the same spec.

Hash iteration order is the kernel's bucket order, which is random per map, so for hash maps
``get_next_key`` is compared on its outcome kind (a key of the map, or ENOENT) and the final
contents as dicts. LRU maps are compared exactly while they hold fewer keys than would make the
kernel evict (see test_lru.py for eviction).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.maps import create_map, possible_cpus
from pybpf.program import MapSpec

from .harness import NO_SHRINK, apply, contents, kernel_map, one_cpu

pytestmark = pytest.mark.kernel

SETTINGS = settings(max_examples=25, deadline=None, phases=NO_SHRINK,
                    suppress_health_check=[HealthCheck.too_slow])
FLAGS = st.sampled_from([0, 0, 0, 0, 1, 2, 3, 4, 8])


def values(size: int, percpu: bool):
    one = st.binary(min_size=size, max_size=size)
    return st.lists(one, min_size=possible_cpus(), max_size=possible_cpus()) if percpu else one


def ops(key_size: int, value_size: int, key_range: int, percpu: bool = False,
        with_lookup_and_delete: bool = True):
    key = st.integers(0, key_range - 1).map(lambda k: k.to_bytes(key_size, "little"))
    update = st.tuples(st.just("update"), key, values(value_size, percpu), FLAGS)
    choices = [
        update, update, update,
        st.tuples(st.just("lookup"), key),
        st.tuples(st.just("delete"), key),
        st.tuples(st.just("next"), st.none() | key),
    ]
    if with_lookup_and_delete:
        choices.append(st.tuples(st.just("lookup_and_delete"), key))
    return st.lists(st.one_of(choices), min_size=8, max_size=40)


def run_both(spec: MapSpec, sequence: list, ordered: bool) -> None:
    ours = create_map(spec)
    with one_cpu(), kernel_map(spec) as km:
        for op in sequence:
            got, want = apply(ours, op, False), apply(km, op, True)
            if op[0] == "next" and not ordered:
                # any order: a key of the map or ENOENT; from an absent key both restart
                if op[1] is None or op[1] not in contents(ours):
                    assert got[0] == want[0], (op, got, want)
                if got[0] == "ok":
                    assert got[1] in contents(ours)
                if want[0] == "ok":
                    assert want[1] in contents(km)
                continue
            assert got == want, (op, got, want)
        assert contents(ours) == contents(km)


@SETTINGS
@given(ops(4, 8, 6))
def test_array_matches_the_kernel(sequence):
    run_both(MapSpec("a", "array", 4, 8, 4), sequence, ordered=True)


@SETTINGS
@given(ops(4, 5, 6, percpu=True))
def test_percpu_array_matches_the_kernel_per_cpu(sequence):
    run_both(MapSpec("pa", "percpu_array", 4, 5, 4), sequence, ordered=True)


@SETTINGS
@given(ops(4, 8, 10))
def test_hash_matches_the_kernel_including_full_map_e2big(sequence):
    run_both(MapSpec("h", "hash", 4, 8, 3), sequence, ordered=False)


@SETTINGS
@given(ops(3, 3, 10))
def test_unaligned_hash_without_prealloc_matches_the_kernel(sequence):
    run_both(MapSpec("h", "hash", 3, 3, 3, flags=1), sequence, ordered=False)


@SETTINGS
@given(ops(4, 4, 10, percpu=True))
def test_percpu_hash_matches_the_kernel_per_cpu(sequence):
    run_both(MapSpec("ph", "percpu_hash", 4, 4, 3), sequence, ordered=False)


@SETTINGS
@given(ops(4, 8, 8))
def test_lru_hash_below_eviction_matches_the_kernel(sequence):
    run_both(MapSpec("l", "lru_hash", 4, 8, 32), sequence, ordered=False)


@SETTINGS
@given(ops(4, 4, 8, percpu=True))
def test_lru_percpu_hash_below_eviction_matches_the_kernel(sequence):
    run_both(MapSpec("lp", "lru_percpu_hash", 4, 4, 32), sequence, ordered=False)


def lpm_keys(data_size: int):
    max_plen = 8 * data_size
    return st.builds(lambda plen, data: plen.to_bytes(4, "little") + data,
                     st.integers(0, max_plen + 2) | st.sampled_from([0, 4, 8, max_plen]),
                     st.binary(min_size=data_size, max_size=data_size)
                     | st.sampled_from([b"\x0a" + bytes(data_size - 1),
                                        b"\x0a\x80" + bytes(data_size - 2)]))


def lpm_ops(data_size: int, value_size: int):
    key = lpm_keys(data_size)
    update = st.tuples(st.just("update"), key,
                       st.binary(min_size=value_size, max_size=value_size), FLAGS)
    return st.lists(st.one_of(
        update, update, update,
        st.tuples(st.just("lookup"), key),
        st.tuples(st.just("delete"), key),
        st.tuples(st.just("next"), st.none() | key),
    ), min_size=8, max_size=40)


@SETTINGS
@given(lpm_ops(2, 4))
def test_lpm_trie_matches_the_kernel_including_postorder_iteration(sequence):
    run_both(MapSpec("t", "lpm_trie", 6, 4, 5, flags=1), sequence, ordered=True)


@SETTINGS
@given(lpm_ops(4, 3))
def test_lpm_trie_of_ipv4_prefixes_matches_the_kernel(sequence):
    run_both(MapSpec("t4", "lpm_trie", 8, 3, 4, flags=1), sequence, ordered=True)


def queue_ops(value_size: int):
    value = st.binary(min_size=value_size, max_size=value_size)
    return st.lists(st.one_of(
        st.tuples(st.just("push"), value, st.sampled_from([0, 0, 2, 1, 3, 4])),
        st.tuples(st.just("pop")),
        st.tuples(st.just("peek")),
    ), min_size=8, max_size=30)


@SETTINGS
@given(queue_ops(4), st.sampled_from(["queue", "stack"]))
def test_queue_and_stack_match_the_kernel_including_overwrite_when_full(sequence, kind):
    ours = create_map(MapSpec("q", kind, 0, 4, 3))
    with kernel_map(MapSpec("q", kind, 0, 4, 3)) as km:
        for op in sequence:
            assert apply(ours, op, False) == apply(km, op, True), op
        drained_ours = [apply(ours, ("pop",), False) for _ in range(4)]
        assert drained_ours == [apply(km, ("pop",), True) for _ in range(4)]
