"""Map creation accepts and refuses exactly the specs bpf(2) accepts and refuses, with the
kernel's errno; unknown types are a clear MapError."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pybpf.errors import MapError
from pybpf.maps import MAP_TYPES, create_map
from pybpf.program import MapSpec

from .harness import NO_SHRINK, kernel_map

SIMPLE_TYPES = ["hash", "array", "percpu_hash", "percpu_array", "lru_hash", "lru_percpu_hash",
                "lpm_trie", "queue", "stack", "bloom_filter", "ringbuf", "prog_array",
                "perf_event_array"]


def creation(make, spec):
    try:
        m = make(spec)
    except MapError as exc:
        return ("err", exc.errno)
    close = getattr(m, "close", None)
    if close:
        close()
    return ("ok", None)


def kernel_create(spec):
    with kernel_map(spec):
        pass


@pytest.mark.kernel
@settings(max_examples=150, deadline=None, phases=NO_SHRINK,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SIMPLE_TYPES), st.sampled_from([0, 1, 3, 4, 5, 8, 260, 261, 513]),
       st.sampled_from([0, 1, 4, 8, 13]), st.sampled_from([0, 1, 3, 4096, 8192, 12288]),
       st.sampled_from([0, 1, 2, 4, 8, 24, 64, 128, 384, 1024, 2048, 4096, 1 << 13]))
@example("percpu_array", 4, 1, 4096, 4096)  # BPF_F_INNER_MAP on a per-CPU array: EINVAL
def test_creation_succeeds_or_fails_like_the_kernel(kind, key, value, entries, flags):
    spec = MapSpec("c", kind, key, value, entries, flags)
    assert creation(create_map, spec) == creation(kernel_create, spec), spec


def test_an_unknown_map_type_is_a_clear_error():
    with pytest.raises(MapError, match="unknown map type 'hashh'") as info:
        create_map(MapSpec("x", "hashh", 4, 4, 4))
    assert info.value.errno == 22


def test_every_map_type_the_design_names_is_implemented():
    for name in ["hash", "array", "percpu_hash", "percpu_array", "lru_hash", "lru_percpu_hash",
                 "lpm_trie", "ringbuf", "perf_event_array", "prog_array", "array_of_maps",
                 "hash_of_maps", "queue", "stack", "bloom_filter"]:
        assert name in MAP_TYPES


@pytest.mark.kernel
@pytest.mark.parametrize("kind", ["array_of_maps", "hash_of_maps"])
@pytest.mark.parametrize("key, value, entries, flags", [
    (4, 4, 4, 0), (4, 8, 4, 0), (8, 4, 4, 0), (3, 4, 4, 0), (4, 4, 0, 0), (4, 4, 4, 1),
    (4, 4, 4, 128), (4, 4, 4, 4096), (4, 4, 4, 8),
])
def test_map_in_map_creation_succeeds_or_fails_like_the_kernel(kind, key, value, entries, flags):
    spec = MapSpec("mim", kind, key, value, entries, flags, inner=MapSpec("i", "hash", 4, 4, 4))
    assert creation(create_map, spec) == creation(kernel_create, spec), spec
