"""``pybpf run PROG --type xdp --pcap FILE -w OUT --json`` end to end: the verdict counts, the
packets written (after xdp_adjust_head / _tail) and the maps after the whole capture are what
the kernel gives running the same program over the same packets with BPF_PROG_TEST_RUN."""

from __future__ import annotations

import json
import struct
from collections import Counter

import dpkt
import pytest

from pybpf import kernel
from pybpf.asm import assemble
from pybpf.capture.pcapfile import PcapReader
from pybpf.cli import main
from pybpf.progtypes.xdp import VERDICTS

from .compare import frame, ipv4

PROGRAM = """
.map per_proto array key=4 value=8 max_entries=256
    r6 = r1
    r2 = *(u32 *)(r6 + 0)
    r3 = *(u32 *)(r6 + 4)
    r4 = r2
    r4 += 34
    if r4 > r3 goto other
    r1 = *(u16 *)(r2 + 12)
    if r1 != 0x8 goto other
    r1 = *(u8 *)(r2 + 23)
    *(u32 *)(r10 - 4) = r1
    r2 = r10
    r2 += -4
    r1 = per_proto ll
    call bpf_map_lookup_elem
    if r0 == 0 goto other
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
    r1 = *(u32 *)(r10 - 4)
    if r1 == 17 goto udp
    if r1 == 6 goto tcp
    r0 = 2
    exit
udp:
    r1 = r6
    r2 = 14
    call bpf_xdp_adjust_head
    r0 = 1
    exit
tcp:
    r1 = r6
    r2 = 8
    call bpf_xdp_adjust_tail
    r0 = 3
    exit
other:
    r0 = 2
    exit
"""


def pybpf(capsys, *args: str) -> tuple[int, str, str]:
    """Run the command in-process the way the ``pybpf`` entry point does."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def capture_packets() -> list[bytes]:
    packets = []
    for i in range(12):
        proto = (17, 6, 1)[i % 3]
        packets.append(frame(payload=ipv4(proto, payload=bytes([i]) * (10 + i))))
    packets.append(frame(ethertype=0x0806, payload=bytes(28)))
    return packets


def write_pcap(path, packets) -> None:
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
        for i, p in enumerate(packets):
            w.writepkt(p, ts=1_700_000_000 + i)


@pytest.mark.kernel
def test_run_over_a_pcap_gives_the_kernels_verdicts_packets_and_maps(tmp_path, capsys):
    src = tmp_path / "count.s"
    src.write_text(PROGRAM)
    packets = capture_packets()
    write_pcap(tmp_path / "in.pcap", packets)
    code, out, err = pybpf(capsys, "run", src, "--type", "xdp", "--pcap", tmp_path / "in.pcap",
                           "-w", tmp_path / "out.pcap", "--json")
    assert code == 0, err
    report = json.loads(out)

    program = assemble(PROGRAM)
    with kernel.load_program(program, prog_type="xdp") as kp:
        outs = [kp.test_run(p) for p in packets]
        kernel_map = sorted([k.hex(), v.hex()] for k, v in kp.maps[0].items())
    assert report["verdicts"] == dict(Counter(VERDICTS[o.retval] for o in outs))
    assert [p.data for p in PcapReader(str(tmp_path / "out.pcap"))] == [o.data_out for o in outs]
    assert sorted(report["maps"]["per_proto"]) == kernel_map
    assert report["packets"] == len(packets)


def test_text_output_counts_verdicts_and_names_the_output_file(tmp_path, capsys):
    src = tmp_path / "count.s"
    src.write_text(PROGRAM)
    write_pcap(tmp_path / "in.pcap", capture_packets())
    code, out, err = pybpf(capsys, "run", src, "--type", "xdp", "--pcap", tmp_path / "in.pcap",
                           "-w", tmp_path / "o.pcap")
    assert code == 0, err
    assert "13 packets" in out
    assert "XDP_DROP: 4" in out and "XDP_TX: 4" in out
    assert "wrote 13 packets" in out


@pytest.mark.parametrize("args,message", [
    (["--pcap", "IN"], "needs --type"),
    (["--type", "kprobe", "--pcap", "IN", "--sandbox"], "may not be called by kprobe"),
    (["--type", "kprobe", "--pcap", "IN"], "the verifier rejects the program as kprobe"),
    (["--type", "xdp", "-w", "OUT"], "-w needs --pcap"),
    (["--type", "xdp", "--pcap", "IN", "--data", "00"], "no --data"),
    (["--type", "nosuch", "--pcap", "IN"], "unknown program type"),
])
def test_bad_pcap_runs_are_clear_errors(tmp_path, capsys, args, message):
    src = tmp_path / "count.s"
    src.write_text(PROGRAM)
    write_pcap(tmp_path / "in.pcap", capture_packets())
    args = [a.replace("IN", str(tmp_path / "in.pcap")).replace("OUT", str(tmp_path / "o"))
            for a in args]
    code, out, err = pybpf(capsys, "run", src, *args)
    assert code != 0
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2


def test_cooked_captures_are_run_as_ethernet_frames(tmp_path, capsys):
    src = tmp_path / "count.s"
    src.write_text(PROGRAM)
    packets = capture_packets()
    with open(tmp_path / "sll.pcap", "wb") as f:
        w = dpkt.pcap.Writer(f, linktype=113)
        for p in packets:
            sll = struct.pack("!HHH8s", 0, 1, 6, p[6:12] + b"\0\0") + p[12:14]
            w.writepkt(sll + p[14:], ts=1)
    code, out, err = pybpf(capsys, "run", src, "--type", "xdp", "--pcap", tmp_path / "sll.pcap",
                           "--json")
    assert code == 0, err
    assert json.loads(out)["verdicts"] == {"XDP_DROP": 4, "XDP_TX": 4, "XDP_PASS": 5}


def test_a_fault_names_the_packet_it_happened_on(tmp_path, capsys):
    src = tmp_path / "fault.s"
    src.write_text("r2 = *(u32 *)(r1 + 0)\nr0 = *(u8 *)(r2 + 59)\nexit\n")
    packets = capture_packets()
    packets[3] = packets[3][:59]
    write_pcap(tmp_path / "in.pcap", packets)
    code, out, err = pybpf(capsys, "run", src, "--type", "xdp", "--pcap", tmp_path / "in.pcap",
                           "--sandbox")
    assert code != 0
    assert "packet 4 of" in err and "pc 1" in err
    # verified (the default), the unchecked packet read is refused before any packet runs
    code, out, err = pybpf(capsys, "run", src, "--type", "xdp", "--pcap", tmp_path / "in.pcap")
    assert code != 0 and "R2 offset is outside of the packet" in err and out == ""
