"""The classic machine against the kernel's own classic BPF: random programs attached with
SO_ATTACH_FILTER to an AF_PACKET socket on the loopback device of a throwaway network
namespace; each frame sent there arrives truncated to the filter's return value (or not at all
when it returns 0), which must be what pybpf's interpreter returns."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pybpf.cbpf import isa, run

from .packets import frame_pool
from .strategies import valid_programs

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and iproute2 for a network namespace")

# (VLAN-tagged frames are left out: on receive the kernel moves the tag into skb metadata, so
# the incoming copy is 4 bytes shorter than what was sent)
FRAMES = [f for f in frame_pool(60, seed=9)
          if len(f) >= 20 and f[12:14] not in (b"\x81\x00", b"\x88\xa8", b"\x91\x00")][:6]

PROBE = r"""
import json, select, socket, sys
sys.path.insert(0, sys.argv[1])
from pybpf.capture.attach import attach_filter
from pybpf.cbpf import isa
req = json.load(sys.stdin)
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
rx.bind(("lo", 0x0003))
tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
tx.bind(("lo", 0))
def drain(timeout):
    got = []
    while select.select([rx], [], [], timeout)[0]:
        got.append(len(rx.recv(65536)))
    return got
results = []
for prog in req["programs"]:
    attach_filter(rx, [isa.Instruction(*t) for t in prog])
    drain(0.01)
    row = []
    for frame in req["frames"]:
        tx.send(bytes.fromhex(frame))
        row.append(sorted(drain(0.03)))
    results.append(row)
json.dump(results, sys.stdout)
"""


def _plain(prog) -> bool:
    """No ancillary or negative-offset loads: the frame alone decides the result."""
    return not any(i.code & 7 == isa.LD and i.code & 0xE0 in (isa.ABS, isa.IND)
                   and i.k & 0x80000000 for i in prog)


@pytest.fixture(scope="module")
def netns():
    name = f"pbcbpf{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


@given(progs=st.lists(valid_programs().filter(_plain), min_size=6, max_size=6))
@settings(max_examples=4, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
def test_interpreter_return_values_match_the_kernels_classic_bpf(netns, progs):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    req = {"programs": [[list(i.astuple()) for i in p] for p in progs],
           "frames": [f.hex() for f in FRAMES]}
    res = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", PROBE, root],
                         input=json.dumps(req), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    observed = json.loads(res.stdout)
    for prog, row in zip(progs, observed):
        for frame, lengths in zip(FRAMES, row):
            r = run(prog, frame)
            # loopback delivers each frame twice to a packet socket: outgoing and incoming
            expected = [] if r == 0 else [min(r, len(frame))] * 2
            assert lengths == expected, (prog, frame.hex(), r)
