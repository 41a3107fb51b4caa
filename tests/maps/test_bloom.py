"""The bloom filter hashes like the kernel's: with BPF_F_ZERO_SEED every peek -- false positives
included -- answers as a kernel bloom filter fed the same values."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.errors import MapError
from pybpf.kernel.uapi import Cmd
from pybpf.maps import create_map
from pybpf.program import MapSpec

from .harness import NO_SHRINK, create_raw, raw_elem

ZERO_SEED = 64


@pytest.mark.kernel
@settings(max_examples=25, deadline=None, phases=NO_SHRINK,
          suppress_health_check=[HealthCheck.too_slow])
@given(value_size=st.sampled_from([1, 3, 4, 8, 13, 16, 40]),
       max_entries=st.sampled_from([1, 4, 10, 100]),
       nr_hashes=st.sampled_from([0, 1, 3, 7, 15]),
       data=st.data())
def test_bloom_filter_answers_exactly_like_the_kernel_with_a_zero_seed(value_size, max_entries,
                                                                       nr_hashes, data):
    spec = MapSpec("b", "bloom_filter", 0, value_size, max_entries, ZERO_SEED,
                   map_extra=nr_hashes)
    ours = create_map(spec)
    fd = create_raw(spec)
    assert fd >= 0
    try:
        value = st.binary(min_size=value_size, max_size=value_size)
        pushed = data.draw(st.lists(value, max_size=2 * max_entries))
        probes = data.draw(st.lists(value, min_size=20, max_size=60))
        for v in pushed:
            ours.push(v)
            assert raw_elem(fd, Cmd.MAP_UPDATE_ELEM, None, v)[0] == 0
        for v in pushed + probes:
            kernel_says = raw_elem(fd, Cmd.MAP_LOOKUP_ELEM, None, v)[0] == 0
            assert ours.peek(v) == kernel_says, v.hex()
    finally:
        os.close(fd)


def test_bloom_filter_has_no_false_negatives():
    bloom = create_map(MapSpec("b", "bloom_filter", 0, 8, 50))
    values = [os.urandom(8) for _ in range(200)]
    for v in values:
        bloom.push(v)
    assert all(v in bloom for v in values)


@pytest.mark.kernel
def test_bloom_filter_refuses_what_the_kernel_refuses():
    spec = MapSpec("b", "bloom_filter", 0, 4, 8)
    bloom = create_map(spec)
    fd = create_raw(spec)
    try:
        cases = [
            (lambda: bloom.push(1, 1),
             lambda: raw_elem(fd, Cmd.MAP_UPDATE_ELEM, None, bytes(4), 1)),
            (lambda: bloom.delete(), lambda: raw_elem(fd, Cmd.MAP_DELETE_ELEM, None, None)),
            (lambda: bloom.get_next_key(), lambda: raw_elem(fd, Cmd.MAP_GET_NEXT_KEY, None, None,
                                                          value_size=4)),
            (lambda: bloom.lookup_and_delete(), lambda: raw_elem(fd, Cmd.MAP_LOOKUP_AND_DELETE_ELEM,
                                                               None, None, value_size=4)),
        ]
        for ours, theirs in cases:
            with pytest.raises(MapError) as info:
                ours()
            assert -info.value.errno == theirs()[0]
    finally:
        os.close(fd)
    with pytest.raises(MapError) as info:
        create_map(MapSpec("b", "bloom_filter", 0, 4, 8, map_extra=16))
    assert info.value.errno == -create_raw(MapSpec("b", "bloom_filter", 0, 4, 8, map_extra=16))
