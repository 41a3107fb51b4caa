"""Live capture: ``pybpf tap -i`` on one end of a veth pair between two network namespaces
the test creates (and removes), with the filter attached in the kernel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and iproute2 to create namespaces")

SENDER = r"""
import socket, struct, sys, time
dst = sys.argv[1]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ic = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b)); t = (t >> 16) + (t & 0xffff); t += t >> 16
    return ~t & 0xffff
for seq in range(1, 6):
    for _ in range(3):
        u.sendto(b"noise", (dst, 9999))          # must never reach the tap
    body = struct.pack("!HH", 0x4242, seq) + b"pybpf-live"
    pkt = struct.pack("!BBH", 8, 0, 0) + body
    ic.sendto(struct.pack("!BBH", 8, 0, csum(pkt)) + body, (dst, 0))
    time.sleep(0.1)
"""


@pytest.fixture
def veth_pair():
    tag = uuid.uuid4().hex[:6]
    a, b = f"pbA{tag}", f"pbB{tag}"
    dev = f"pbv{tag}"
    cmds = [
        ["ip", "netns", "add", a], ["ip", "netns", "add", b],
        ["ip", "link", "add", dev, "netns", a, "type", "veth", "peer", "name", dev, "netns", b],
        ["ip", "-n", a, "addr", "add", "10.77.0.1/24", "dev", dev],
        ["ip", "-n", b, "addr", "add", "10.77.0.2/24", "dev", dev],
        ["ip", "-n", a, "link", "set", dev, "up"], ["ip", "-n", b, "link", "set", dev, "up"],
    ]
    try:
        for c in cmds:
            subprocess.run(c, check=True, capture_output=True)
        yield a, b, dev
    finally:
        subprocess.run(["ip", "netns", "del", a], capture_output=True)
        subprocess.run(["ip", "netns", "del", b], capture_output=True)


def test_live_tap_sees_only_matching_packets_filtered_in_the_kernel(veth_pair, tmp_path):
    a, b, dev = veth_pair
    out = tmp_path / "live.pcap"
    tap = subprocess.Popen(["ip", "netns", "exec", a, sys.executable, "-m", "pybpf", "tap",
                            "-i", dev, "-c", "4", "-t", "15", "icmp[icmptype] = icmp-echo"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    subprocess.run(["ip", "netns", "exec", a, sys.executable, "-c", SENDER, "10.77.0.2"],
                   check=True, timeout=30)
    stdout, stderr = tap.communicate(timeout=30)
    assert tap.returncode == 0, stderr
    lines = stdout.splitlines()
    assert len(lines) == 4
    assert all("IP 10.77.0.1 > 10.77.0.2: ICMP echo request" in ln for ln in lines), lines
    # nothing but the matching packets crossed from the kernel into Python
    assert "4 packets captured" in stderr
    assert "4 packets received from the kernel" in stderr


def test_live_tap_writes_a_pcap_tcpdump_can_read(veth_pair, tmp_path):
    a, b, dev = veth_pair
    out = tmp_path / "live.pcap"
    tap = subprocess.Popen(["ip", "netns", "exec", a, sys.executable, "-m", "pybpf", "tap",
                            "-i", dev, "-c", "3", "-t", "15", "-w", str(out), "udp port 9999"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    subprocess.run(["ip", "netns", "exec", a, sys.executable, "-c", SENDER, "10.77.0.2"],
                   check=True, timeout=30)
    _, stderr = tap.communicate(timeout=30)
    assert tap.returncode == 0, stderr
    res = subprocess.run(["tcpdump", "-nn", "-r", str(out)], capture_output=True, text=True)
    lines = res.stdout.splitlines()
    assert len(lines) == 3 and all(".9999: UDP, length 5" in ln for ln in lines), lines


def test_live_tap_on_a_missing_interface_is_a_clear_error():
    res = subprocess.run([sys.executable, "-m", "pybpf", "tap", "-i", "nosuchif0", "-t", "1"],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "nosuchif0" in res.stderr and "Traceback" not in res.stderr
