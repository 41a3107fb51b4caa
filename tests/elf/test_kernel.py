"""Every fixture loaded by pybpf into the running kernel is the same program libbpf loads:
identical translated code (``bpftool prog dump xlated``), the same maps, and the same results
and map contents when run (``bpftool prog run``) on the same packets."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pybpf import isa
from pybpf.elf import load_object
from pybpf.pytest_plugin import build_packet

from .conftest import (BPFTOOL, FIXTURES, FIXTURES_DIR, NOT_FOR_LIBBPF, bpftool_json,
                       bpftool_loadall, run)

pytestmark = pytest.mark.kernel

LIBBPF_FIXTURES = [f for f in FIXTURES if f not in NOT_FOR_LIBBPF]


def comparable(code: bytes) -> list[isa.Instruction]:
    """Translated code with map ids masked (each load creates maps with new ids)."""
    out = []
    for i in isa.decode(code, check=False):
        if i.opcode == isa.LDDW and i.src in (isa.PSEUDO_MAP_FD, isa.PSEUDO_MAP_VALUE):
            i = isa.Instruction(i.opcode, i.dst, i.src, i.off, 0,
                                i.imm_hi if i.src == isa.PSEUDO_MAP_VALUE else 0)
        out.append(i)
    return out


def xlated_by_bpftool(pin, name: str, tmp_path) -> bytes:
    out = tmp_path / f"{name}.xlated"
    run([BPFTOOL, "prog", "dump", "xlated", "pinned", str(pin / name), "file", str(out)])
    return out.read_bytes()


def map_shape(info) -> tuple:
    return (info["type"], info["bytes_key"], info["bytes_value"], info["max_entries"],
            info["flags"])


@pytest.mark.parametrize("name", LIBBPF_FIXTURES)
def test_fixture_translates_to_the_same_kernel_code_as_libbpf(fixture_objects, bpf_kernel,
                                                              name, tmp_path):
    path = fixture_objects[name]
    spec = load_object(path)
    with bpftool_loadall(path) as pin:
        coll = bpf_kernel(spec)

        for prog_name, kprog in coll.programs.items():
            ref_info = bpftool_json("prog", "show", "pinned", str(pin / prog_name))
            assert kprog.prog_type == ref_info["type"], prog_name
            assert kprog.info().btf_id, f"{prog_name} should be loaded with the object's BTF"
            ours = comparable(kprog.xlated())
            theirs = comparable(xlated_by_bpftool(pin, prog_name, tmp_path))
            assert ours == theirs, prog_name
        # the same maps (libbpf prefixes internal map names with the object name)
        ref_maps = sorted(map_shape(bpftool_json("map", "show", "pinned", str(p)))
                          for p in sorted((pin / "maps").glob("*")))
        our_maps = sorted(map_shape(bpftool_json("map", "show", "id", str(m.id)))
                          for m in coll.maps.values())
        assert our_maps == ref_maps


def test_legacy_maps_section_loads_in_the_kernel(fixture_objects, bpf_kernel, bpf_packet):
    spec = load_object(fixture_objects["legacy_maps"])
    assert {n: (m.type, m.key_size, m.value_size, m.max_entries)
            for n, m in spec.maps.items()} == {"legacy_counts": ("array", 4, 8, 4),
                                               "legacy_hash": ("hash", 4, 4, 16)}
    coll = bpf_kernel(spec)
    pkt = bpf_packet("udp", payload=b"x" * 11)
    coll.programs["legacy_count"].test_run(pkt)
    # a socket filter's skb->len does not count the Ethernet header the test run pulled
    counts = {int.from_bytes(k, "little"): int.from_bytes(v, "little")
              for k, v in coll.maps["legacy_counts"].items()}
    assert counts == {i: int(i == (len(pkt) - 14) & 3) for i in range(4)}


PACKETS = {
    "udp4": dict(proto="udp"),
    "tcp4": dict(proto="tcp", dport=80, payload=bytes(range(40))),
    "udp6": dict(proto="udp", src="fe80::1", dst="fe80::2"),
    "icmp4": dict(proto="icmp", src="192.168.1.7", ttl=1),
    "arp": dict(proto="arp"),
    "blocked": dict(proto="tcp", src="10.9.8.7"),
}

#: (fixture, program) pairs the kernel can test-run, and the maps whose contents we compare
RUNNABLE = [
    ("xdp_drop_proto", "xdp_drop_udp", []),
    ("packet_counter", "count_ethertypes", ["counts"]),
    ("tc_edit", "tc_swap_macs", []),
    ("socket_filter", "keep_tcp", []),
    ("tail_call", "dispatch", []),
    ("bpf2bpf", "xdp_checksum", []),
    ("bpf2bpf", "tc_checksum", []),
    ("globals", "xdp_globals", []),
    ("globals", "xdp_hexdigit", []),
    ("ringbuf", "emit_event", []),
    ("loops", "sum_for_loop", []),
    ("loops", "sum_bpf_loop", []),
    ("lpm_firewall", "lpm_firewall", ["verdicts"]),
    ("map_in_map", "read_inner", []),
]


def bpftool_run(pin, prog: str, packet: bytes, tmp_path) -> tuple[int, bytes]:
    data_in, data_out = tmp_path / "in", tmp_path / "out"
    data_in.write_bytes(packet)
    out = run([BPFTOOL, "prog", "run", "pinned", str(pin / prog), "data_in", str(data_in),
               "data_out", str(data_out)]).stdout
    retval = int(out.split("Return value:")[1].split(",")[0])
    return retval, data_out.read_bytes()


def dump_map(path) -> dict[bytes, bytes]:
    entries = json.loads(subprocess.run([BPFTOOL, "--json", "map", "dump", "pinned", str(path)],
                                        capture_output=True, text=True, check=True).stdout)
    return {bytes(int(b, 16) for b in e["key"]): bytes(int(b, 16) for b in e["value"])
            for e in entries}


@pytest.mark.parametrize("fixture,prog,maps", RUNNABLE, ids=[r[1] for r in RUNNABLE])
def test_fixture_runs_like_bpftool_prog_run(fixture_objects, bpf_kernel, fixture, prog, maps,
                                            tmp_path):
    path = fixture_objects[fixture]
    spec = load_object(path)
    blocked = (4 << 0).to_bytes(4, "little")
    with bpftool_loadall(path) as pin:
        coll = bpf_kernel(spec)
        if fixture == "lpm_firewall":  # block 10.9.8.7/32 in both
            key = (32).to_bytes(4, "little") + bytes([10, 9, 8, 7])
            coll.maps["blocked"].update(key, blocked)
            run([BPFTOOL, "map", "update", "pinned", str(pin / "maps" / "blocked"), "key",
                 *[str(b) for b in key], "value", *[str(b) for b in blocked]])
        for label, fields in PACKETS.items():
            packet = build_packet(**fields)
            ours = coll.programs[prog].test_run(packet)
            retval, data_out = bpftool_run(pin, prog, packet, tmp_path)
            assert (ours.retval, ours.data_out) == (retval, data_out), label
        for map_name in maps:
            ref = dump_map(pin / "maps" / map_name)
            assert dict(coll.maps[map_name].items()) == ref, map_name


def test_const_volatile_knob_set_before_load_changes_the_verdict(fixture_objects, bpf_kernel):
    """globals.c returns verdict_big (rodata) for packets longer than threshold (rodata)."""
    spec = load_object(fixture_objects["globals"])
    assert int.from_bytes(spec.get_variable("threshold"), "little") == 64
    assert int.from_bytes(spec.get_variable("bytes_seen"), "little") == 100
    packet = build_packet("udp", payload=bytes(100))
    assert bpf_kernel(spec).programs["xdp_globals"].test_run(packet).retval == 1
    spec.set_variable("verdict_big", 3)
    spec.set_variable("threshold", 1000)
    assert bpf_kernel(spec).programs["xdp_globals"].test_run(packet).retval == 2
    spec.set_variable("threshold", 10)
    coll = bpf_kernel(spec)
    assert coll.programs["xdp_globals"].test_run(packet).retval == 3
    data = coll.maps[".data"].lookup(bytes(4))
    assert int.from_bytes(data, "little") == 100 + len(packet)


def test_tail_call_dispatcher_jumps_through_the_initial_prog_array(fixture_objects, bpf_kernel):
    spec = load_object(fixture_objects["tail_call"])
    assert spec.maps["jump_table"].init_refs == {0: "handle_ipv4", 2: "handle_ipv6"}
    coll = bpf_kernel(spec)
    run_ = coll.programs["dispatch"].test_run
    assert run_(build_packet("udp")).retval == 1          # XDP_DROP from handle_ipv4
    assert run_(build_packet("udp", src="::1", dst="::2")).retval == 3   # XDP_TX
    assert run_(build_packet("arp")).retval == 2          # XDP_PASS: no tail call


def test_more_map_kinds_are_created_like_libbpf_creates_them(bpf_kernel, tmp_path):
    """bloom_filter (map_extra), perf_event_array (one slot per CPU), queue, LRU per-CPU."""
    from pathlib import Path

    from pybpf.pytest_plugin import compile_c, find_clang
    if find_clang() is None:
        pytest.skip("clang is not installed")
    path = compile_c(Path(__file__).parent / "maps_more.c", tmp_path)
    spec = load_object(path)
    assert spec.maps["bloom"].map_extra == 3
    with bpftool_loadall(path) as pin:
        ref = sorted(map_shape(bpftool_json("map", "show", "pinned", str(p)))
                     for p in sorted((pin / "maps").glob("*")))
    coll = bpf_kernel(spec)
    ours = sorted(map_shape(bpftool_json("map", "show", "id", str(m.id)))
                  for m in coll.maps.values())
    assert ours == ref


def test_pinning_by_name_is_read_from_the_map_definition(tmp_path):
    from pybpf.pytest_plugin import compile_c, find_clang
    if find_clang() is None:
        pytest.skip("clang is not installed")
    src = tmp_path / "pin.c"
    src.write_text('#include "%s"\n'
                   "struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);\n"
                   "  __type(key, __u32); __type(value, __u32); __uint(pinning, 1); }\n"
                   'shared SEC(".maps");\n'
                   "struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);\n"
                   '  __type(key, __u32); __type(value, __u32); } private SEC(".maps");\n'
                   % (FIXTURES_DIR / "pybpf_fixture.h"))
    spec = load_object(compile_c(src, tmp_path))
    assert (spec.maps["shared"].pinning, spec.maps["private"].pinning) == (1, 0)


def test_kfuncs_resolve_like_libbpf(bpf_kernel, tmp_path):
    """bpf_task_from_pid/bpf_task_release (kfuncs, called by kernel BTF id) find this
    process: the same translated code as libbpf's, and the program sees our pid."""
    import os
    from pathlib import Path

    from pybpf.pytest_plugin import compile_c, find_clang
    if find_clang() is None:
        pytest.skip("clang is not installed")
    path = compile_c(Path(__file__).parent / "ksyms.c", tmp_path)
    spec = load_object(path)
    assert {n: k.kind for n, k in spec.ksyms.items()} == {
        "bpf_task_from_pid": "kfunc", "bpf_task_release": "kfunc"}
    with bpftool_loadall(path) as pin:
        out = tmp_path / "xlated"
        run([BPFTOOL, "prog", "dump", "xlated", "pinned", str(pin / "ksyms"), "file", str(out)])
        coll = bpf_kernel(spec)
        assert comparable(coll.programs["ksyms"].xlated()) == comparable(out.read_bytes())
    spec.set_variable("target", os.getpid())
    assert bpf_kernel(spec).programs["ksyms"].test_run(build_packet("udp")).retval == 1


def test_typed_and_untyped_ksyms_become_btf_ids_and_addresses(tmp_path):
    """A typed ksym loads as PSEUDO_BTF_ID with the kernel's BTF id of the variable; a weak
    kfunc missing from the kernel is poisoned; an unknown strong one is an error."""
    from pybpf.btf import load_vmlinux
    from pybpf.btf.parser import VMLINUX
    from pybpf.pytest_plugin import compile_c, find_clang
    if find_clang() is None or not os.access(VMLINUX, os.R_OK):
        pytest.skip("needs clang and the kernel's BTF")
    kernel = load_vmlinux()
    var = next(t for t in kernel.find("cpu_hw_events", "var"))
    src = tmp_path / "typed.c"
    header = FIXTURES_DIR / "pybpf_fixture.h"
    src.write_text(f'#include "{header}"\n'
                   "struct cpu_hw_events { int n_events; };\n"
                   "extern const struct cpu_hw_events cpu_hw_events __ksym;\n"
                   "extern void pybpf_no_such_kfunc(void) __ksym __weak;\n"
                   'SEC("xdp") int f(struct xdp_md *c) {\n'
                   "  if (c->data == 7) pybpf_no_such_kfunc();\n"
                   "  return bpf_per_cpu_ptr(&cpu_hw_events, 0) != 0; }\n"
                   'char LICENSE[] SEC("license") = "GPL";\n')
    spec = load_object(compile_c(src, tmp_path))
    insns = spec.programs["f"].insns
    loads = [i for i in insns if i.opcode == isa.LDDW]
    assert [(i.src, i.imm) for i in loads] == [(isa.PSEUDO_BTF_ID, var.id)]
    calls = [i for i in insns if i.opcode == isa.JMP | isa.CALL and i.imm >= 2_002_000_000]
    assert len(calls) == 1 and calls[0].src == 0   # the poisoned weak kfunc
    src.write_text(src.read_text().replace(" __ksym __weak;", " __ksym;"))
    from pybpf.errors import ObjectFileError
    with pytest.raises(ObjectFileError, match="kfunc.*'pybpf_no_such_kfunc' is not in the "
                                              "running kernel"):
        load_object(compile_c(src, tmp_path))
