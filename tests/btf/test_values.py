"""Map keys and values decoded through BTF read as bpftool's BTF-formatted map dump shows
them (libbpf's btf_dumper), and encoding is the inverse of decoding."""

from __future__ import annotations

import json

import pytest

from pybpf.btf.values import EnumValue, Struct, decode, encode, typed_map
from pybpf.elf import load_object
from pybpf.pytest_plugin import build_packet

from .conftest import bpftool


def _plain(value):
    """Our decoded value in the shape of bpftool's JSON 'formatted' output."""
    if isinstance(value, Struct):
        if value._type.startswith("."):      # a DATASEC: [{var: value}, ...]
            return {value._type: [{k: _plain(v)} for k, v in value._fields.items()]}
        return {k: _plain(v) for k, v in value._fields.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, EnumValue):
        return value.name
    return value


CASES = [("packet_counter", "count_ethertypes", {}),
         ("globals", "xdp_globals", {}),
         ("lpm_firewall", "lpm_firewall", {"blocked": [((32, [10, 0, 0, 1]), 9)]})]


@pytest.mark.kernel
@pytest.mark.parametrize("fixture,prog,setup", CASES, ids=[c[0] for c in CASES])
def test_decoded_maps_read_like_bpftools_btf_dump(fixture_objects, bpf_kernel, fixture, prog,
                                                 setup):
    spec = load_object(fixture_objects[fixture])
    coll = bpf_kernel(spec)
    for map_name, entries in setup.items():
        m = typed_map(coll.maps[map_name], spec.maps[map_name], spec.btf)
        for (prefixlen, addr), value in entries:
            m[{"prefixlen": prefixlen, "addr": bytes(addr)}] = value
    for proto in ("udp", "tcp", "arp"):
        coll.programs[prog].test_run(build_packet(proto, src="10.0.0.1"))
    compared = 0
    for name, live in coll.maps.items():
        mspec = spec.maps[name]
        if not mspec.btf_value_type_id:
            continue
        dump = json.loads(bpftool("--json", "map", "dump", "id", str(live.id)))
        ref = [e["formatted"] for e in dump]
        ours = []
        for key, value in typed_map(live, mspec, spec.btf).items():
            entry = {"value": _plain(value)}
            if mspec.btf_key_type_id:
                entry = {"key": _plain(key), **entry}
            ours.append(entry)
        assert ours == ref, name
        compared += 1
    assert compared


def test_structs_round_trip_through_encode_and_decode(fixture_objects):
    spec = load_object(fixture_objects["ringbuf"], core_target="local")
    event = spec.btf.find_one("event", "struct")
    raw = encode(spec.btf, event.id, {"len": 60, "first": 0xAB, "seq": 7})
    assert len(raw) == 16
    value = decode(spec.btf, event.id, raw)
    assert (value.len, value.first, value.seq, value.pad) == (60, 0xAB, 7, [0, 0, 0])
    assert value == {"len": 60, "first": 0xAB, "pad": [0, 0, 0], "seq": 7}
    assert encode(spec.btf, event.id, value) == raw


def test_unknown_members_are_refused(fixture_objects):
    from pybpf.errors import BTFError
    spec = load_object(fixture_objects["ringbuf"], core_target="local")
    event = spec.btf.find_one("event", "struct")
    with pytest.raises(BTFError, match="no member"):
        encode(spec.btf, event.id, {"length": 1})


def test_enums_decode_to_their_enumerator(fixture_objects):
    spec = load_object(fixture_objects["core_read"], core_target="local")
    pid_type = spec.btf.find_one("pid_type", "enum")
    value = decode(spec.btf, pid_type.id, (3).to_bytes(4, "little"))
    assert value == 3 and repr(value) == "PIDTYPE_SID"
