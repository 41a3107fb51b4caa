"""The everyday CO-RE workflow, end to end: pybpf writes vmlinux.h from the running kernel's
BTF, clang compiles a program against it (every struct access becomes a CO-RE relocation),
and pybpf loads it -- the same translated code as libbpf, the same results in the VM."""

from __future__ import annotations

import os
import subprocess

import pytest

from pybpf.btf import load_vmlinux
from pybpf.btf.cprinter import format_c
from pybpf.btf.parser import VMLINUX
from pybpf.elf import load_object
from pybpf.pytest_plugin import build_packet, find_clang

PROGRAM = r"""
#include "vmlinux.h"
#define SEC(n) __attribute__((section(n), used))

SEC("xdp")
int ipv4_ttl(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end)
        return XDP_ABORTED;
    if (eth->h_proto != __builtin_bswap16(0x0800))
        return XDP_PASS;
    return ip->ttl > 10 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def vmlinux_object(tmp_path_factory):
    clang = find_clang()
    if clang is None or not os.access(VMLINUX, os.R_OK):
        pytest.skip("needs clang and /sys/kernel/btf/vmlinux")
    tmp = tmp_path_factory.mktemp("vmlinux_h")
    (tmp / "vmlinux.h").write_text(format_c(load_vmlinux()))
    (tmp / "prog.c").write_text(PROGRAM)
    subprocess.run([clang, "-target", "bpf", "-O2", "-g", "-c", "prog.c", "-o", "prog.o"],
                   cwd=tmp, check=True)
    return tmp / "prog.o"


def test_a_program_built_on_our_vmlinux_h_has_co_re_relocations(vmlinux_object):
    spec = load_object(vmlinux_object)
    relos = spec.btf_ext.core_relos["xdp"]
    roots = {spec.btf[r.type_id].name for r in relos}
    assert {"xdp_md", "ethhdr", "iphdr"} <= roots


@pytest.mark.kernel
def test_it_loads_like_libbpf_and_runs_the_same_in_the_vm(vmlinux_object, bpf_kernel, bpf_vm,
                                                          tmp_path):
    from tests.elf.conftest import BPFTOOL, bpftool_loadall, run
    from tests.elf.test_kernel import comparable

    spec = load_object(vmlinux_object)
    kernel, vm = bpf_kernel(spec), bpf_vm(spec)
    with bpftool_loadall(vmlinux_object) as pin:
        out = tmp_path / "xlated"
        run([BPFTOOL, "prog", "dump", "xlated", "pinned", str(pin / "ipv4_ttl"), "file",
             str(out)])
        assert comparable(kernel.programs["ipv4_ttl"].xlated()) == comparable(out.read_bytes())
    for packet in (build_packet("udp", ttl=64), build_packet("udp", ttl=3), build_packet("arp"),
                   build_packet("tcp", src="::1", dst="::2")):
        assert vm.programs["ipv4_ttl"].test_run(packet).retval == \
            kernel.programs["ipv4_ttl"].test_run(packet).retval
