"""tcpdump as the reference compiler: ``tcpdump -r EMPTY.pcap -ddd EXPR`` compiles offline for
the pcap's link type (snaplen 262144, the default of ``tcpdump -y``)."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import dpkt

from pybpf.cbpf import isa

TCPDUMP = shutil.which("tcpdump")
FILE_LINKTYPE = {"EN10MB": 1, "RAW": 101, "LINUX_SLL": 113, "LINUX_SLL2": 276, "NULL": 0}
CORPUS = Path(__file__).parent / "data" / "corpus.txt"


@functools.cache
def empty_pcap(linktype: str) -> str:
    d = Path(tempfile.mkdtemp(prefix="pybpf-oracle-"))
    path = d / f"empty-{linktype}.pcap"
    with open(path, "wb") as f:
        dpkt.pcap.Writer(f, linktype=FILE_LINKTYPE[linktype], snaplen=262144)
    return str(path)


def tcpdump_dump(expr: str, linktype: str = "EN10MB", flag: str = "-ddd") -> subprocess.CompletedProcess:
    return subprocess.run([TCPDUMP, "-r", empty_pcap(linktype), flag, expr],
                          capture_output=True, text=True, timeout=30)


@functools.cache
def tcpdump_program(expr: str, linktype: str = "EN10MB") -> tuple[isa.Instruction, ...]:
    res = tcpdump_dump(expr, linktype)
    if res.returncode:
        raise RuntimeError(f"tcpdump refused {expr!r}: {res.stderr.strip()}")
    return tuple(isa.parse_ddd(res.stdout))


def corpus() -> list[tuple[str, str]]:
    out = []
    for line in CORPUS.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        linktype = "EN10MB"
        if line.startswith("["):
            linktype, _, line = line[1:].partition("]")
            line = line.strip()
        out.append((linktype, line))
    return out
