"""Batch operations (BPF_MAP_LOOKUP/UPDATE/DELETE/LOOKUP_AND_DELETE_BATCH) give the same
results, errors and final contents as the kernel's, for every map type that has keys."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.errors import MapError
from pybpf.maps import create_map, possible_cpus
from pybpf.program import MapSpec

from .harness import NO_SHRINK, contents, kernel_map, one_cpu

pytestmark = pytest.mark.kernel

SPECS = {
    "hash": MapSpec("h", "hash", 4, 4, 4),
    "percpu_hash": MapSpec("ph", "percpu_hash", 4, 4, 4),
    "lru_hash": MapSpec("l", "lru_hash", 4, 4, 32),
    "array": MapSpec("a", "array", 4, 4, 4),
    "percpu_array": MapSpec("pa", "percpu_array", 4, 4, 4),
    "lpm_trie": MapSpec("t", "lpm_trie", 5, 4, 4, flags=1),
}


def outcome(fn, *args, **kwargs):
    try:
        result = fn(*args, **kwargs)
    except MapError as exc:
        return ("err", exc.errno)
    if isinstance(result, list):
        result = sorted(result)
    return ("ok", result)


def batch_ops(spec: MapSpec):
    key_range = 6 if spec.type != "lpm_trie" else 9
    key = st.integers(0, key_range - 1).map(
        lambda k: (k if spec.type != "lpm_trie" else min(k, 8) | (k << 8)).to_bytes(
            spec.key_size, "little"))
    one = st.binary(min_size=4, max_size=4)
    value = st.lists(one, min_size=possible_cpus(), max_size=possible_cpus()) \
        if "percpu" in spec.type else one
    return st.lists(st.one_of(
        st.tuples(st.just("update"), st.lists(st.tuples(key, value), min_size=1, max_size=6),
                  st.sampled_from([0, 0, 1, 2, 4])),
        st.tuples(st.just("delete"), st.lists(key, min_size=1, max_size=4)),
        st.tuples(st.just("lookup"), st.sampled_from([0, 0, 4])),
        st.tuples(st.just("lookup_and_delete"), st.just(0)),
    ), min_size=3, max_size=10)


def apply_batch(m, op):
    name, arg, *rest = op
    if name == "update":
        return outcome(m.update_batch, arg, rest[0])
    if name == "delete":
        return outcome(m.delete_batch, arg)
    return outcome(lambda: m.lookup_batch(delete=name == "lookup_and_delete", flags=arg)[0])


@pytest.mark.parametrize("kind", sorted(SPECS))
@settings(max_examples=20, deadline=None, phases=NO_SHRINK,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors])
@given(data=st.data())
def test_batch_operations_match_the_kernel(kind, data):
    spec = SPECS[kind]
    sequence = data.draw(batch_ops(spec))
    ours = create_map(spec)
    with one_cpu(), kernel_map(spec) as km:
        for op in sequence:
            got, want = apply_batch(ours, op), apply_batch(km, op)
            if op[0] == "update" and got[0] == "err" and want[0] == "err":
                got, want = got[0], want[0]   # KernelMap reports the count in the message only
            assert got == want, op
            assert contents(ours) == contents(km), op
