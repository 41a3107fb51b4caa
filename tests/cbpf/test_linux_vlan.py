"""Live-capture VLAN encoding (Linux ancillary loads) against ``tcpdump -i lo -ddd``: libpcap
then tests SKF_AD_VLAN_TAG_PRESENT / SKF_AD_VLAN_TAG first, because drivers move the outer tag
into skb metadata. Both programs run in pybpf's classic machine with that metadata set."""

from __future__ import annotations

import functools
import struct
import subprocess
import warnings

import pytest

from pybpf.capture.attach import kernel_accepts
from pybpf.cbpf import compile_filter, parse_ddd, run
from pybpf.cbpf.machine import SkbContext

from .oracle import TCPDUMP
from .packets import frame_pool

warnings.filterwarnings("ignore", category=UserWarning, module="dpkt")
EXPRS = ["vlan", "vlan 5", "vlan and ip", "vlan 10 and tcp port 80", "vlan 5 and vlan 6 and ip",
         "vlan and vlan and udp", "ip or vlan", "not vlan and udp port 53", "vlan 100 or arp"]


@functools.cache
def live_program(expr: str):
    res = subprocess.run([TCPDUMP, "-i", "lo", "-ddd", expr], capture_output=True, text=True)
    if res.returncode:
        pytest.skip(f"tcpdump -i lo cannot compile here: {res.stderr.strip()}")
    return parse_ddd(res.stdout)


def contexts():
    """(frame, metadata) pairs: tags in the frame, and the outer tag moved into metadata."""
    out = []
    for f in frame_pool(600, seed=17):
        out.append((f, SkbContext.for_ethernet(f)))
        if len(f) >= 18 and f[12:14] in (b"\x81\x00", b"\x88\xa8", b"\x91\x00"):
            tpid, tci = struct.unpack(">HH", f[12:16])
            stripped = f[:12] + f[16:]
            out.append((stripped, SkbContext.for_ethernet(stripped, vlan_present=1,
                                                            vlan_tci=tci, vlan_tpid=tpid)))
    return out


CASES = contexts()


@pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")
@pytest.mark.parametrize("expr", EXPRS)
def test_linux_vlan_encoding_accepts_what_libpcaps_live_program_accepts(expr):
    ours = compile_filter(expr, linux_ext=True)
    ref = live_program(expr)
    for frame, ctx in CASES:
        assert run(ours, frame, ctx) == run(ref, frame, ctx), (expr, frame.hex(), ctx)
    assert kernel_accepts(ours)


@pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")
def test_linux_vlan_programs_are_not_longer_than_libpcaps_in_total(capsys):
    ours = sum(len(compile_filter(e, linux_ext=True)) for e in EXPRS)
    ref = sum(len(live_program(e)) for e in EXPRS)
    with capsys.disabled():
        print(f"\nlive VLAN encoding, {len(EXPRS)} expressions: pybpf {ours}, libpcap {ref}")
    assert ours <= ref
