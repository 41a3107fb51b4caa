"""Feature probes answer as the running kernel does (uname, /proc/config.gz, bpf(2))."""

from __future__ import annotations

import errno
import gzip
import os
import subprocess

import pytest

from pybpf.errors import UsageError
from pybpf.kernel import features, syscall

pytestmark = pytest.mark.kernel


def test_kernel_version_is_unames():
    release = subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
    major, minor = release.split(".")[:2]
    assert features.kernel_version()[:2] == (int(major), int(minor))
    assert features.kernel_version_code() >> 16 == int(major)


def test_bpf_is_usable_here_and_a_refusal_is_one_line(monkeypatch):
    assert features.bpf_unavailable_reason() is None
    features.bpf_unavailable_reason.cache_clear()
    monkeypatch.setattr(syscall, "raw_bpf", lambda cmd, attr: -errno.EPERM)
    try:
        reason = features.bpf_unavailable_reason()
    finally:
        features.bpf_unavailable_reason.cache_clear()
    assert reason and "\n" not in reason and "CAP_BPF" in reason


@pytest.mark.parametrize("kind", ["socket_filter", "xdp", "sched_cls", "tracepoint",
                                  "raw_tracepoint", "perf_event", "cgroup_skb", "kprobe"])
def test_program_types_this_kernel_runs_are_found(kind):
    assert features.has_prog_type(kind)


def test_a_program_type_number_the_kernel_does_not_know_is_absent():
    assert not features.has_prog_type(900)


def test_map_types_are_probed_and_unknown_numbers_are_absent():
    assert features.has_map_type("ringbuf") and features.has_map_type("lpm_trie")
    assert not features.has_map_type(900)


def test_helper_availability_follows_the_program_type():
    assert features.has_helper("sched_cls", "bpf_skb_store_bytes")
    assert not features.has_helper("socket_filter", "bpf_skb_store_bytes")
    assert features.has_helper("xdp", "bpf_map_lookup_elem")
    assert not features.has_helper("xdp", 100000)


def test_unknown_type_names_list_the_known_ones():
    with pytest.raises(UsageError, match="known: socket_filter, kprobe"):
        features.has_prog_type("socket_filtre")


def test_the_kprobe_verdict_agrees_with_the_kernel_config():
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            config = f.read()
    except OSError:
        pytest.skip("no /proc/config.gz")
    reason = features.kprobes_unavailable_reason()
    if "# CONFIG_KPROBES is not set" in config:
        assert reason is not None and "CONFIG_KPROBES" in reason
    elif os.path.exists("/sys/kernel/tracing/kprobe_events"):
        assert reason is None
