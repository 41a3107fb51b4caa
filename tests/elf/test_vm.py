"""The acceptance test of the object loader: every fixture gives the same return values,
packets and map contents in pybpf's interpreter as in the kernel, on the same inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpf.elf import load_object
from pybpf.errors import VerifierError, VMError
from pybpf.pytest_plugin import build_packet

from .test_kernel import PACKETS, RUNNABLE

#: maps whose entries are live objects (programs, maps) or stream data, not bytes
NOT_COMPARED = {"prog_array", "array_of_maps", "hash_of_maps", "ringbuf"}

RUNS = RUNNABLE + [("legacy_maps", "legacy_count", [])]


@pytest.mark.kernel
@pytest.mark.parametrize("fixture,prog,maps", RUNS, ids=[r[1] for r in RUNS])
def test_fixture_runs_the_same_in_the_vm_and_the_kernel(fixture_objects, bpf_kernel, bpf_vm,
                                                        fixture, prog, maps):
    spec = load_object(fixture_objects[fixture])
    kernel, vm = bpf_kernel(spec), bpf_vm(spec)
    if fixture == "lpm_firewall":
        key = (32).to_bytes(4, "little") + bytes([10, 9, 8, 7])
        for engine in (kernel, vm):
            engine.maps["blocked"].update(key, (4).to_bytes(4, "little"))
    for label, fields in PACKETS.items():
        packet = build_packet(**fields)
        want = kernel.programs[prog].test_run(packet)
        got = vm.programs[prog].test_run(packet)
        assert (got.retval, got.data_out) == (want.retval, want.data_out), label
    for name, spec_map in spec.maps.items():
        if spec_map.type in NOT_COMPARED:
            continue
        assert dict(vm.maps[name].items()) == dict(kernel.maps[name].items()), name


def test_tail_calls_follow_the_object_prog_array_in_the_vm(fixture_objects, bpf_vm):
    vm = bpf_vm(load_object(fixture_objects["tail_call"]))
    dispatch = vm.programs["dispatch"]
    assert dispatch.test_run(build_packet("udp")).retval == 1          # handle_ipv4: DROP
    assert dispatch.test_run(build_packet("udp", src="::1", dst="::2")).retval == 3
    assert dispatch.test_run(build_packet("arp")).retval == 2


def test_const_volatile_knobs_apply_in_the_vm(fixture_objects, bpf_vm):
    spec = load_object(fixture_objects["globals"])
    spec.set_variable("threshold", 10)
    spec.set_variable("verdict_big", 3)
    vm = bpf_vm(spec)
    packet = build_packet("udp", payload=bytes(100))
    assert vm.programs["xdp_globals"].test_run(packet).retval == 3
    data = vm.maps[".data"].lookup(bytes(4))
    assert int.from_bytes(data, "little") == 100 + len(packet)


def test_vm_faults_name_the_c_file_and_line(bpf_compile, bpf_vm, tmp_path):
    src = tmp_path / "fault.c"
    src.write_text('#include "%s"\n' % (Path(__file__).parent.parent / "fixtures" /
                                        "pybpf_fixture.h") +
                   'SEC("xdp")\n'
                   "int oob(struct xdp_md *ctx)\n"
                   "{\n"
                   "    unsigned char *data = (void *)(long)ctx->data;\n"
                   "    return data[4000];\n"
                   "}\n"
                   'char LICENSE[] SEC("license") = "GPL";\n')
    # verified (the default), the engine refuses to load it, naming the C line and the rule
    with pytest.raises(VerifierError) as refused:
        bpf_vm(bpf_compile(src), sandbox=False)
    assert f"{src}:6 (return data[4000];)" in str(refused.value)
    assert "outside of the packet" in str(refused.value)
    assert refused.value.explanation.suggestion
    # sandboxed, it runs and faults at that line
    vm = bpf_vm(bpf_compile(src), sandbox=True)
    with pytest.raises(VMError) as exc:
        vm.programs["oob"].test_run(build_packet("udp"))
    assert exc.value.source == f"{src}:6: return data[4000];"
