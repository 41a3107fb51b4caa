"""Expressions whose offsets are not constants (geneve's inner packet, protochain's header
walk), 802.3/LLC forms and the forms pybpf refuses, against tcpdump and the kernel.

The corpus (tests/cbpf/data/corpus.txt) already compares these forms with tcpdump on the
generated frames; here: the programs run in the kernel (SO_ATTACH_FILTER accepts them, where
libpcap's protochain loop is refused), the checker agrees, and refusals are clear."""

from __future__ import annotations

import random
import struct

import pytest

from pybpf.capture.attach import kernel_accepts
from pybpf.cbpf import compile_filter, is_valid, run
from pybpf.errors import FilterError

from .oracle import TCPDUMP, tcpdump_dump, tcpdump_program
from .packets import frame_pool, geneve_frame

pytestmark = pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")

GENEVE = ["geneve and ip", "geneve and udp port 53", "geneve 5 and ether host 00:11:22:33:44:55",
          "geneve and ip6 and tcp", "geneve and tcp[tcpflags] & tcp-syn != 0",
          "geneve and not arp", "geneve and (ip[8] = 64 or ip6)"]


@pytest.mark.parametrize("expr", GENEVE)
def test_geneve_inner_filters_agree_with_tcpdump_on_tunnelled_frames(expr):
    rnd = random.Random(3)
    frames = [geneve_frame(rnd) for _ in range(300)]
    ours, ref = compile_filter(expr), tcpdump_program(expr)
    results = [run(ours, f) for f in frames]
    assert results == [run(ref, f) for f in frames]
    assert len(ours) <= len(ref)


def test_geneve_options_length_moves_the_inner_packet():
    """The same inner frame behind 0, 1 and 5 option words: matched each time."""
    inner = (b"\x00\x11\x22\x33\x44\x55" * 2 + b"\x08\x00"
             + struct.pack(">BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0, bytes([10, 0, 0, 1]),
                           bytes([10, 0, 0, 2])) + struct.pack(">HHHH", 1, 53, 8, 0))
    prog = compile_filter("geneve and udp dst port 53 and host 10.0.0.2")
    ref = tcpdump_program("geneve and udp dst port 53 and host 10.0.0.2")
    for words in (0, 1, 5):
        gen = struct.pack(">BBHI", words, 0, 0x6558, 7 << 8) + b"\xab" * (4 * words) + inner
        udp = struct.pack(">HHHH", 999, 6081, 8 + len(gen), 0) + gen
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         bytes([1, 1, 1, 1]), bytes([2, 2, 2, 2])) + udp
        frame = b"\x02" * 12 + b"\x08\x00" + ip
        assert run(prog, frame) == run(ref, frame) != 0
        assert run(prog, frame[:-5]) == run(ref, frame[:-5]) == 0   # dport cut in half


@pytest.mark.parametrize("expr", GENEVE + ["ip6 protochain 6", "protochain 17"])
def test_programs_with_scratch_offsets_pass_the_checker_and_the_kernel(expr):
    prog = compile_filter(expr)
    assert is_valid(prog)
    assert kernel_accepts(prog)


def test_libpcaps_protochain_loop_is_refused_by_the_kernel_but_ours_is_not():
    ref = tcpdump_program("ip6 protochain 6")
    assert not is_valid(ref) and not kernel_accepts(ref)
    assert kernel_accepts(compile_filter("ip6 protochain 6"))


def test_protochain_follows_extension_headers_like_tcpdump():
    for expr in ("ip6 protochain 6", "ip6 protochain 44", "ip protochain 17"):
        ours, ref = compile_filter(expr), tcpdump_program(expr)
        pool = frame_pool(300, seed=21)
        assert [run(ours, p) for p in pool] == [run(ref, p) for p in pool]


REFUSED = [
    ("gateway 10.0.0.1", "host name resolution"),
    ("decnet host 1.2", "DECnet addresses"),
    ("clnp", "ISO protocols"),
    ("geneve and vlan", "'vlan' after 'geneve'"),
    ("geneve and geneve", "'geneve' after 'geneve'"),
    ("ip6 broadcast", "not supported"),
    ("[LINUX_SLL] llc", "Ethernet only"),
    ("byte 3 & 1", "does not load the byte"),
    ("ah[0] = 1", "unsupported index operation"),
    ("geneve and inbound", "after 'geneve'"),
]


@pytest.mark.parametrize("expr,message", REFUSED, ids=[r[0] for r in REFUSED])
def test_unsupported_forms_get_a_clear_error(expr, message):
    linktype = "EN10MB"
    if expr.startswith("["):
        linktype, _, expr = expr[1:].partition("] ")
    with pytest.raises(FilterError) as info:
        compile_filter(expr, linktype)
    assert message in str(info.value)
    assert info.value.position is not None


LLC = ["ether proto 0x42", "ether proto \\ipx", "atalk", "llc u", "llc rr", "netbeui"]


@pytest.mark.parametrize("expr", LLC)
def test_llc_forms_agree_with_tcpdump_on_8023_frames(expr):
    from .packets import llc_frame
    rnd = random.Random(8)
    frames = [llc_frame(rnd) for _ in range(300)]
    ours, ref = compile_filter(expr), tcpdump_program(expr)
    assert [run(ours, f) for f in frames] == [run(ref, f) for f in frames]
    assert any(run(ref, f) for f in frames) or expr == "llc rr"
    assert tcpdump_dump(expr).returncode == 0


SCRATCH_EXPRS = ["geneve and udp port 53", "geneve 5 and ether host 00:11:22:33:44:55",
                 "ip6 protochain 6", "protochain 17"]


def _tunnel_pool() -> list[bytes]:
    rnd = random.Random(12)
    frames = [geneve_frame(rnd) for _ in range(80)] + frame_pool(80, seed=12)
    return [f for f in frames if len(f) > 54]


@pytest.mark.parametrize("expr", SCRATCH_EXPRS)
def test_scratch_offset_programs_translate_to_ebpf_faithfully_in_pybpfs_interpreter(expr):
    from pybpf.cbpf.to_ebpf import translate
    from pybpf.vm import Interpreter
    insns = compile_filter(expr)
    vm = Interpreter(translate(insns))
    for frame in _tunnel_pool():
        assert vm.run(frame) == run(insns, frame), (expr, frame.hex())


@pytest.mark.kernel
@pytest.mark.parametrize("expr", SCRATCH_EXPRS)
def test_scratch_offset_programs_translate_to_ebpf_faithfully_in_the_kernel(expr):
    from pybpf import kernel
    from pybpf.cbpf.to_ebpf import translate
    from .test_to_ebpf import kernel_runnable, kernel_view
    insns = compile_filter(expr)
    with kernel.load_program(translate(insns)) as prog:
        for frame in _tunnel_pool():
            if kernel_runnable(frame):
                data, ctx = kernel_view(frame)
                assert prog.test_run(frame).retval == run(insns, data, ctx), (expr, frame.hex())


@pytest.mark.parametrize("expr", ["geneve", "not geneve", "geneve or tcp", "geneve and ip",
                                  "geneve 77 and udp port 53"])
def test_geneve_frames_cut_anywhere_are_judged_like_tcpdump(expr):
    """libpcap loads the Geneve protocol type (and the inner offsets) even for a bare
    ``geneve``: a frame cut inside the Geneve header is rejected by both."""
    rnd = random.Random(2)
    frames = [geneve_frame(rnd) for _ in range(40)]
    cuts = [f[:n] for f in frames for n in range(40, min(len(f), 110))]
    ours, ref = compile_filter(expr), tcpdump_program(expr)
    assert [run(ours, p) for p in cuts] == [run(ref, p) for p in cuts]


def test_ifindex_in_live_capture_is_the_ancillary_load_tcpdump_uses():
    from .test_linux_vlan import live_program
    from pybpf.cbpf.machine import SkbContext
    ours = compile_filter("ifindex 1 and ip", linux_ext=True)
    ref = live_program("ifindex 1 and ip")
    for frame in frame_pool(100, seed=4):
        for ifindex in (1, 2):
            ctx = SkbContext.for_ethernet(frame)
            ctx.ifindex = ifindex
            assert run(ours, frame, ctx) == run(ref, frame, ctx)
