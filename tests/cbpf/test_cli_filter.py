"""``pybpf filter`` prints tcpdump's formats: compared with ``tcpdump -d/-dd/-ddd``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pybpf.cbpf import compile_filter, parse_ddd, run

from .oracle import TCPDUMP, tcpdump_dump, tcpdump_program

pytestmark = pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")

SAME_AS_TCPDUMP = [("EN10MB", "tcp port 80"), ("EN10MB", "host 10.0.0.1"), ("EN10MB", "ip6"),
                   ("EN10MB", "tcp[13] & 2 != 0"), ("EN10MB", "icmp[icmptype] = icmp-echo"),
                   ("RAW", "ip"), ("LINUX_SLL", "tcp port 80"), ("LINUX_SLL2", "ip"),
                   ("NULL", "ip6")]


def pybpf(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybpf", *args], capture_output=True, text=True)


@pytest.mark.parametrize("flag", ["-d", "-dd", "-ddd"])
@pytest.mark.parametrize("linktype,expr", SAME_AS_TCPDUMP)
def test_filter_output_is_tcpdumps_text(flag, linktype, expr):
    assert tuple(compile_filter(expr, linktype)) == tcpdump_program(expr, linktype)
    res = pybpf("filter", flag, "-y", linktype, expr)
    assert res.returncode == 0, res.stderr
    assert res.stdout == tcpdump_dump(expr, linktype, flag).stdout


def test_ddd_output_round_trips_and_filters_like_tcpdumps_program():
    res = pybpf("filter", "-ddd", "tcp", "and", "not", "port", "22")   # words joined like tcpdump
    ours = parse_ddd(res.stdout)
    ref = tcpdump_program("tcp and not port 22")
    from .packets import frame_pool
    for p in frame_pool(200, seed=3):
        assert run(ours, p) == run(ref, p)


def test_json_output_carries_the_instructions():
    res = pybpf("filter", "--json", "udp")
    doc = json.loads(res.stdout)
    assert doc["count"] == len(doc["instructions"]) == len(compile_filter("udp"))
    assert doc["linktype"] == "EN10MB"


def test_bad_expression_exits_1_with_one_line_pointing_at_the_token():
    res = pybpf("filter", "-d", "tcp port 80 and host")
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "column" in res.stderr
    assert "Traceback" not in res.stderr


def test_unknown_link_type_is_refused():
    res = pybpf("filter", "-y", "FDDI", "ip")
    assert res.returncode == 1 and "unknown link type" in res.stderr
