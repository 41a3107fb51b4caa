"""The pcap-filter compiler against tcpdump (libpcap 1.10) as the oracle.

For every corpus expression, pybpf's program and ``tcpdump -ddd``'s program (run in pybpf's
classic interpreter) return the same value on generated frames and on real captures; the
optimiser's instruction total over the corpus is not above libpcap's; printing tcpdump's own
programs with our printer reproduces ``tcpdump -d``/``-dd`` text exactly."""

from __future__ import annotations

import warnings
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings

from pybpf.cbpf import compile_filter, run
from pybpf.cbpf.printer import format_d, format_dd, format_ddd
from pybpf.errors import FilterError

from .oracle import TCPDUMP, corpus, tcpdump_dump, tcpdump_program
from .packets import frame_pool, frames

pytestmark = pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")
warnings.filterwarnings("ignore", category=UserWarning, module="dpkt")

CORPUS = corpus()
PCAPS = Path(__file__).resolve().parent.parent / "fixtures" / "pcaps"
PCAP_LINKTYPES = {1: "EN10MB", 113: "LINUX_SLL", 276: "LINUX_SLL2"}
_POOLS: dict[str, list[bytes]] = {}


def pool(linktype: str) -> list[bytes]:
    if linktype not in _POOLS:
        _POOLS[linktype] = frame_pool(400, seed=11, linktype=linktype)
    return _POOLS[linktype]


def real_packets(linktype: str) -> list[bytes]:
    out = []
    for path in sorted(PCAPS.glob("*.pcap")):
        with open(path, "rb") as f:
            reader = dpkt.pcap.Reader(f)
            if PCAP_LINKTYPES.get(reader.datalink()) == linktype:
                out.extend(bytes(buf) for _, buf in reader)
    return out


def ids(item):
    return f"[{item[0]}] {item[1]}"


@pytest.mark.parametrize("linktype,expr", CORPUS, ids=[ids(c) for c in CORPUS])
def test_filter_accepts_the_same_packets_as_tcpdumps(linktype, expr):
    ours = compile_filter(expr, linktype)
    ref = tcpdump_program(expr, linktype)
    packets = pool(linktype) + real_packets(linktype)
    for pkt in packets:
        assert run(ours, pkt) == run(ref, pkt), (expr, pkt.hex())


@pytest.mark.parametrize("linktype,expr", CORPUS[::7], ids=[ids(c) for c in CORPUS[::7]])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=frames())
def test_filter_agrees_with_tcpdump_on_hypothesis_frames(linktype, expr, data):
    from .packets import reframe
    pkt = reframe(data, linktype) if linktype != "EN10MB" else data
    assert run(compile_filter(expr, linktype), pkt) == run(tcpdump_program(expr, linktype), pkt)


def test_real_captures_exercise_the_corpus():
    """The fixtures are real traffic: some corpus filters must match some of their packets."""
    pkts = real_packets("EN10MB")
    assert len(pkts) > 20
    progs = [compile_filter(e) for lt, e in CORPUS if lt == "EN10MB"]
    hits = sum(any(run(prog, p) for p in pkts) for prog in progs)
    assert hits >= 20


def test_optimised_instruction_total_is_not_above_libpcaps(capsys):
    ours = sum(len(compile_filter(e, lt)) for lt, e in CORPUS)
    ref = sum(len(tcpdump_program(e, lt)) for lt, e in CORPUS)
    with capsys.disabled():
        print(f"\ninstruction total over {len(CORPUS)} expressions: pybpf {ours}, "
              f"libpcap {ref}")
    assert ours <= ref


@pytest.mark.parametrize("linktype,expr", CORPUS[::5], ids=[ids(c) for c in CORPUS[::5]])
def test_printer_reproduces_tcpdump_text_for_tcpdumps_own_programs(linktype, expr):
    ref = tcpdump_program(expr, linktype)
    assert format_d(ref) == tcpdump_dump(expr, linktype, "-d").stdout
    assert format_dd(ref) == tcpdump_dump(expr, linktype, "-dd").stdout
    assert format_ddd(ref) == tcpdump_dump(expr, linktype, "-ddd").stdout


def test_equal_programs_print_exactly_like_tcpdump():
    same = [(lt, e) for lt, e in CORPUS if tuple(compile_filter(e, lt)) == tcpdump_program(e, lt)]
    assert len(same) >= 50, len(same)
    for lt, e in same[:40]:
        assert format_d(compile_filter(e, lt)) == tcpdump_dump(e, lt, "-d").stdout


def test_unoptimised_programs_accept_the_same_packets():
    for lt, e in CORPUS[::9]:
        plain = compile_filter(e, lt, optimize=False)
        opt = compile_filter(e, lt)
        for pkt in pool(lt)[:150]:
            assert run(plain, pkt) == run(opt, pkt), e


BAD = [
    ("tcp port", "expected an address", 8),
    ("host 1.2.3.4 and", "unexpected end", 16),
    ("tcp and 80", "needs a qualifier", 8),
    ("ip[2:3] = 1", "size must be 1, 2, or 4", 5),
    ("port 70000", "illegal port", 5),
    ("net 10.0.0.1/8", "non-network bits", 4),
    ("foo bar", "unexpected 'foo'", 0),
    ("ip and (tcp or udp", "expected ')'", 18),
    ("tcp[0] / 0 = 1", "division by zero", 7),
    ("host 300.1.2.3", "bad IPv4 address", 5),
    ("vlan 5000", "greater than maximum 4095", 5),
    ("ip $ tcp", "unexpected character", 3),
    ("udp port nosuchservice", "unknown port", 9),
]


@pytest.mark.parametrize("expr,message,column", BAD, ids=[b[0] for b in BAD])
def test_malformed_expressions_point_at_the_offending_token(expr, message, column):
    with pytest.raises(FilterError) as info:
        compile_filter(expr)
    assert message in str(info.value)
    assert info.value.position == column, str(info.value)
    # tcpdump refuses them too
    assert tcpdump_dump(expr).returncode != 0


def test_always_false_expression_is_refused_like_tcpdump():
    with pytest.raises(FilterError, match="rejects all packets"):
        compile_filter("ip and arp")
    assert "rejects all packets" in tcpdump_dump("ip and arp").stderr


def test_empty_expression_accepts_everything_like_tcpdump():
    assert tuple(compile_filter("")) == tcpdump_program("")


def test_long_expressions_get_jump_trampolines_and_still_match_tcpdump():
    import ipaddress
    import random
    import struct
    from pybpf.cbpf import check
    hosts = [f"10.9.{i // 200}.{i % 200 + 1}" for i in range(120)]
    expr = " or ".join(f"host {h}" for h in hosts)
    ours = compile_filter(expr)
    check(ours)
    assert any(i.code == 0x05 for i in ours)          # some ja trampolines were needed
    ref = tcpdump_program(expr)
    rnd = random.Random(2)
    frames = []
    for _ in range(300):
        src = ipaddress.IPv4Address(rnd.choice(hosts + ["10.9.9.9"])).packed
        dst = ipaddress.IPv4Address(rnd.choice(hosts + ["10.9.9.8"])).packed
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20, 0, 0, 64, 6, 0, src, dst)
        frames.append(b"\0" * 12 + rnd.choice([b"\x08\x00", b"\x08\x06"]) + ip + b"\0" * 20)
    assert [run(ours, f) for f in frames] == [run(ref, f) for f in frames]
    assert any(run(ours, f) for f in frames)
