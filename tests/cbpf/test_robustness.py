"""Bad input never escapes as a raw Python exception: expressions, programs, capture files."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from pybpf.cbpf import compile_filter, isa, run
from pybpf.errors import CaptureError, FilterError, VMError

from .strategies import programs

WORDS = ["tcp", "udp", "ip", "ip6", "host", "net", "port", "portrange", "src", "dst", "and", "or",
         "not", "(", ")", "[", "]", ":", "1", "4", "80", "10.0.0.1", "2001:db8::1", "/", "24",
         "mask", "255.0.0.0", "=", "!=", ">", "<", "+", "-", "*", "/", "&", "|", "len", "vlan",
         "mpls", "pppoes", "geneve", "ether", "broadcast", "multicast", "proto", "\\tcp",
         "aa:bb:cc:dd:ee:ff", "tcpflags", "tcp-syn", "less", "greater", "icmp", "arp", "0x1ffff",
         "99999999999", "-1", "20-30", "!", "&&", "||", "$", "foo", "protochain", "llc", "u",
         "byte", "ifindex", "ipx", "atalk", "decnet", "clnp", "gateway", "0x800", "1500"]


@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12))
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_token_soup_compiles_or_raises_filter_error(words):
    expr = " ".join(words)
    try:
        insns = compile_filter(expr)
    except FilterError as exc:
        assert exc.position is None or 0 <= exc.position <= len(expr)
        return
    assert insns and insns[-1].code & 7 == isa.RET


@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_arbitrary_text_compiles_or_raises_filter_error(expr):
    try:
        compile_filter(expr)
    except FilterError:
        pass


def test_deep_nesting_is_an_error_not_a_crash():
    try:
        compile_filter("(" * 3000 + "tcp" + ")" * 3000)
    except FilterError:
        pass


@given(programs(), st.binary(max_size=80))
@settings(max_examples=400, deadline=None)
def test_interpreter_runs_any_program_or_raises_vm_error(prog, packet):
    try:
        r = run(prog, packet)
    except VMError:
        return
    assert 0 <= r <= isa.U32


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_reader_takes_any_bytes_after_a_pcap_header(tmp_path_factory, tail):
    import struct
    from pybpf.capture.pcapfile import PcapReader
    path = tmp_path_factory.mktemp("fuzz") / "f.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + tail)
    try:
        for _ in PcapReader(str(path)):
            pass
    except CaptureError:
        pass
