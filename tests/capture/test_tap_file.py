"""``pybpf tap -r`` against ``tcpdump -r`` on real captures: the same summary lines, the same
packets written; damaged files give a clear error and never a partial record."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest

from pybpf.capture.pcapfile import PcapReader
from pybpf.capture.summary import Summarizer, summary_line
from pybpf.capture.tap import run_tap
from pybpf.errors import CaptureError, UsageError

TCPDUMP = shutil.which("tcpdump")
PCAPS = Path(__file__).resolve().parent.parent / "fixtures" / "pcaps"
FIXTURES = sorted(PCAPS.glob("*.pcap"))
pytestmark = pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")

# application-layer decoders tcpdump runs and pybpf does not (DNS, mDNS)
APP_DECODED = (".53: ", ".5353: ")


def tcpdump_lines(path, *args) -> list[str]:
    res = subprocess.run([TCPDUMP, "-nn", "-r", str(path), *args], capture_output=True, text=True)
    return res.stdout.splitlines()


def pybpf(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybpf", *args], capture_output=True, text=True)


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
def test_summary_lines_match_tcpdump_nn(path):
    reader = PcapReader(str(path))
    summarize = Summarizer(reader.linktype)
    ours = [summary_line(p, summarize(p)) for p in reader]
    ref = tcpdump_lines(path)
    assert len(ours) == len(ref)
    compared = 0
    for a, b in zip(ours, ref):
        if any(m in b for m in APP_DECODED):
            continue
        assert a == b
        compared += 1
    assert compared >= len(ref) * 3 // 4


@pytest.mark.parametrize("expr", ["icmp", "tcp port 8080", "arp or icmp6", "ip6", "udp",
                                  "tcp[tcpflags] & tcp-syn != 0", "host 10.200.0.2 and not arp"])
def test_tap_cli_prints_the_lines_tcpdump_prints_for_a_filter(expr):
    path = PCAPS / "veth-ethernet.pcap"
    res = pybpf("tap", "-r", str(path), expr)
    assert res.returncode == 0, res.stderr
    ours = res.stdout.splitlines()
    ref = tcpdump_lines(path, expr)
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        if not any(m in b for m in APP_DECODED):
            assert a == b


def records(path) -> list[bytes]:
    with open(path, "rb") as f:
        return [bytes(buf) for _, buf in dpkt.pcap.Reader(f)]


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
@pytest.mark.parametrize("expr", ["tcp", "icmp or icmp6", "not arp and len > 80"])
def test_written_packets_are_those_tcpdump_writes(tmp_path, path, expr):
    ours, ref = tmp_path / "ours.pcap", tmp_path / "ref.pcap"
    res = pybpf("tap", "-r", str(path), "-w", str(ours), expr)
    assert res.returncode == 0, res.stderr
    subprocess.run([TCPDUMP, "-r", str(path), "-w", str(ref), expr], capture_output=True, check=True)
    assert records(ours) == records(ref)
    # tcpdump reads our output file
    assert len(tcpdump_lines(ours)) == len(records(ref))


def test_count_stops_after_n_matches():
    res = pybpf("tap", "-r", str(PCAPS / "veth-ethernet.pcap"), "-c", "3", "tcp")
    assert res.stdout.splitlines() == tcpdump_lines(PCAPS / "veth-ethernet.pcap", "-c", "3", "tcp")


def test_pcapng_input_gives_the_same_lines(tmp_path):
    src = PCAPS / "veth-ethernet.pcap"
    ng = tmp_path / "x.pcapng"
    with open(src, "rb") as f, open(ng, "wb") as out:
        r = dpkt.pcap.Reader(f)
        w = dpkt.pcapng.Writer(out, linktype=r.datalink(), snaplen=262144)
        for ts, buf in r:
            w.writepkt(buf, ts=ts)
    ours = pybpf("tap", "-r", str(ng), "icmp").stdout.splitlines()
    assert ours == tcpdump_lines(ng, "icmp")
    assert len(ours) > 4


def _cut_points(data: bytes) -> list[int]:
    """Offsets inside the global header, inside record headers and inside packet data."""
    cuts = [10, 23, 24 + 5]
    off = 24
    while off < len(data):
        caplen = struct.unpack_from("<I", data, off + 8)[0]
        cuts += [off + 7, off + 16 + caplen // 2]
        off += 16 + caplen
    return cuts[:: max(1, len(cuts) // 12)]


def test_truncated_files_give_a_clear_error_and_only_complete_packets(tmp_path):
    data = (PCAPS / "veth-ethernet.pcap").read_bytes()
    complete = records(PCAPS / "veth-ethernet.pcap")
    for cut in _cut_points(data):
        bad = tmp_path / f"cut{cut}.pcap"
        bad.write_bytes(data[:cut])
        out = tmp_path / f"out{cut}.pcap"
        res = pybpf("tap", "-r", str(bad), "-w", str(out))
        assert res.returncode == 1
        assert res.stderr.startswith("pybpf: error: ") and "Traceback" not in res.stderr
        assert str(bad) in res.stderr and ("truncated" in res.stderr or "not a pcap" in res.stderr)
        if out.exists():
            got = records(out)     # dpkt raises on a partial record: all records are whole
            assert got == complete[:len(got)]
            # exactly the packets that were complete before the cut
            whole = 0
            off = 24
            while off + 16 <= cut:
                caplen = struct.unpack_from("<I", data, off + 8)[0]
                if off + 16 + caplen > cut:
                    break
                whole += 1
                off += 16 + caplen
            assert len(got) == whole


def test_corrupt_record_length_is_reported_with_its_offset(tmp_path):
    data = bytearray((PCAPS / "veth-ethernet.pcap").read_bytes())
    struct.pack_into("<I", data, 24 + 8, 0x7FFFFFFF)
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(bytes(data))
    with pytest.raises(CaptureError, match=r"packet 1 at byte 24"):
        run_tap("", read_file=str(bad))


def test_garbage_is_not_a_capture_file(tmp_path):
    bad = tmp_path / "garbage.pcap"
    bad.write_bytes(b"this is not a capture file at all")
    res = pybpf("tap", "-r", str(bad))
    assert res.returncode == 1 and "not a pcap or pcapng file" in res.stderr
    assert tcpdump_lines(bad) == []


def test_the_input_file_is_never_overwritten(tmp_path):
    src = tmp_path / "in.pcap"
    src.write_bytes((PCAPS / "veth-ethernet.pcap").read_bytes())
    before = src.read_bytes()
    with pytest.raises(UsageError):
        run_tap("icmp", read_file=str(src), write_file=str(src))
    link = tmp_path / "link.pcap"
    link.symlink_to(src)
    res = pybpf("tap", "-r", str(src), "-w", str(link), "icmp")
    assert res.returncode == 1 and "refusing" in res.stderr
    assert src.read_bytes() == before


def test_bad_filter_expression_is_reported_before_reading(tmp_path):
    res = pybpf("tap", "-r", str(PCAPS / "veth-ethernet.pcap"), "tcp", "port")
    assert res.returncode == 1 and "column" in res.stderr


@pytest.mark.parametrize("expr", ["tcp", "icmp or arp", "ip6 and not icmp6"])
def test_batch_jit_path_selects_the_packets_tcpdump_selects(tmp_path, expr):
    path = PCAPS / "veth-ethernet.pcap"
    out = tmp_path / "batch.pcap"
    run_tap(expr, read_file=str(path), write_file=str(out), batch_threshold=0)
    ref = tmp_path / "ref.pcap"
    subprocess.run([TCPDUMP, "-r", str(path), "-w", str(ref), expr], capture_output=True, check=True)
    assert records(out) == records(ref)


def test_summaries_of_generated_frames_match_tcpdump(tmp_path):
    """Frames from the compiler tests' generator (varied TCP flags and options, ARP and RARP
    operations, ICMP echo): the link/network/transport part of each line equals tcpdump's;
    tcpdump's application decoders (FTP, DNS over TCP) only add text after it."""
    import random
    from tests.cbpf.packets import MACS, mac, network
    rnd = random.Random(4)
    path = tmp_path / "gen.pcap"
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for i in range(300):
            et = rnd.choice([0x800, 0x800, 0x86DD, 0x806, 0x8035])
            fr = mac(rnd.choice(MACS)) + mac(rnd.choice(MACS)) + struct.pack(">H", et) + network(rnd, et, extras=False)
            f.write(struct.pack("<IIII", 1700000000 + i, i, len(fr), len(fr)) + fr)
    reader = PcapReader(str(path))
    summarize = Summarizer(reader.linktype)
    ours = [summary_line(p, summarize(p)) for p in reader]
    ref = tcpdump_lines(path)
    checked = 0
    for a, b in zip(ours, ref):
        if not any(m in a for m in ("ARP,", "ICMP echo", "Flags [", "ICMP6, echo")) or "[|" in b:
            continue
        assert a == b or (b.startswith(a) and b[len(a):].startswith((": ", " ["))), (a, b)
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("expr", ["geneve and ip6 and tcp", "geneve 77 and host 10.0.0.1",
                                  "protochain 17", "llc u"])
def test_both_tap_paths_select_tunnelled_and_chained_packets_like_tcpdump(tmp_path, expr):
    """Geneve frames (scratch-word offsets), IPv6 extension-header chains (protochain) and
    802.3 frames, through the per-packet path and the batch JIT path."""
    import random
    from tests.cbpf.packets import frame_pool, geneve_frame
    rnd = random.Random(6)
    frames = [geneve_frame(rnd) for _ in range(300)] + frame_pool(300, seed=6)
    path = tmp_path / "tunnels.pcap"
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000 + i, i, len(fr), len(fr)) + fr)
    ref = tmp_path / "ref.pcap"
    subprocess.run([TCPDUMP, "-r", str(path), "-w", str(ref), expr], capture_output=True,
                   check=True)
    assert records(ref)
    for threshold in (0, 10**9):
        out = tmp_path / f"out{threshold}.pcap"
        run_tap(expr, read_file=str(path), write_file=str(out), batch_threshold=threshold)
        assert records(out) == records(ref), threshold
