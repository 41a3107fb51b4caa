"""The pytest plugin as a user meets it: a test file of a few lines, in its own pytest run,
compiles a C program, runs it in the VM (and the kernel when permitted) and reads its maps."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from pybpf.pytest_plugin import find_clang

USER_PROGRAM = r"""
#include <linux/bpf.h>
#define SEC(n) __attribute__((section(n), used))
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

struct {
    int (*type)[BPF_MAP_TYPE_ARRAY];
    int (*max_entries)[1];
    __u32 *key;
    __u64 *value;
} seen SEC(".maps");

SEC("xdp")
int count_and_pass(struct xdp_md *ctx)
{
    __u32 zero = 0;
    __u64 *n = bpf_map_lookup_elem(&seen, &zero);
    if (n)
        *n += ctx->data_end - ctx->data;
    return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""

USER_TEST = """
def test_counts_bytes(bpf_compile, bpf_vm, bpf_packet):
    vm = bpf_vm(bpf_compile("prog.c"))
    packet = bpf_packet("tcp", dport=443)
    assert vm.programs["count_and_pass"].test_run(packet).retval == 2
    assert vm.typed("seen")[0] == len(packet)

def test_same_in_the_kernel(bpf_compile, bpf_kernel, bpf_packet):
    k = bpf_kernel(bpf_compile("prog.c"))
    packet = bpf_packet("udp")
    assert k.programs["count_and_pass"].test_run(packet).retval == 2
    assert k.typed("seen")[0] == len(packet)
"""


def test_a_user_test_file_uses_the_plugin_fixtures(tmp_path):
    if find_clang() is None:
        pytest.skip("clang is not installed")
    (tmp_path / "prog.c").write_text(USER_PROGRAM)
    (tmp_path / "test_prog.py").write_text(textwrap.dedent(USER_TEST))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-rs", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout or "2 passed" in proc.stdout
