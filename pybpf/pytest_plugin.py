"""pytest fixtures for testing eBPF objects with pybpf (registered as the ``pybpf`` plugin).

Installed with pybpf through the ``pytest11`` entry point, so a user's test is a few lines::

    def test_drops_udp(bpf_compile, bpf_kernel, bpf_packet):
        obj = bpf_compile("xdp_drop.c")                      # clang -target bpf -O2 -g, cached
        with bpf_kernel(obj) as k:                           # skipped where bpf(2) is refused
            assert k.programs["xdp_drop_udp"].test_run(bpf_packet(proto="udp")).retval == 1

Fixtures:

- ``bpf_compile(source, *cflags) -> ObjectSpec``: compile a C file once per session (skips the
  test when clang is not installed) and load it with :func:`pybpf.elf.load_object`;
  ``bpf_compile.path(source)`` gives the ``.o`` path instead;
- ``bpf_object(path_or_bytes) -> ObjectSpec``: load an object you already have;
- ``bpf_kernel(spec) -> KernelCollection``: the object loaded into the running kernel (skips
  when bpf(2) is not permitted); closed at teardown;
- ``bpf_vm(spec) -> VMCollection``: the object loaded into pybpf's interpreter;
- ``bpf_packet(...) -> bytes``: an Ethernet frame (IPv4/IPv6, TCP/UDP/ICMP) built with dpkt.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

CLANG_NAMES = ("clang-19", "clang")


def find_clang() -> str | None:
    for name in CLANG_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _system_includes() -> list[str]:
    """Where <asm/types.h> lives on Debian-like systems (linux/types.h needs it)."""
    return [os.path.dirname(p) for p in glob.glob("/usr/include/*-linux-gnu/asm")][:1]


def compile_c(source: str | os.PathLike, out_dir: str | os.PathLike, *cflags: str,
              clang: str | None = None) -> Path:
    """``clang -target bpf -O2 -g -c`` of ``source`` into ``out_dir`` (cached by content)."""
    clang = clang or find_clang()
    if clang is None:
        raise FileNotFoundError("clang is not installed")
    source = Path(source)
    text = source.read_bytes()
    includes = [str(source.parent), *_system_includes()]
    # the cache key covers the source, its local headers and the flags
    h = hashlib.sha256(text + " ".join(cflags).encode())
    for header in sorted(source.parent.glob("*.h")):
        h.update(header.read_bytes())
    out = Path(out_dir) / f"{source.stem}-{h.hexdigest()[:12]}.o"
    if not out.exists():
        cmd = [clang, "-target", "bpf", "-O2", "-g", "-Wall", "-Wno-unused-function",
               *(f"-I{i}" for i in includes), *cflags, "-c", str(source), "-o", str(out) + ".tmp"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"clang failed on {source}:\n{proc.stderr}")
        os.replace(str(out) + ".tmp", out)
    return out


class _Compiler:
    def __init__(self, out_dir: Path, base: Path):
        self.out_dir = out_dir
        self.base = base

    def _source(self, source) -> Path:
        p = Path(source)
        return p if p.is_absolute() or p.exists() else self.base / p

    def path(self, source, *cflags: str) -> Path:
        if find_clang() is None:
            pytest.skip("clang is not installed")
        return compile_c(self._source(source), self.out_dir, *cflags)

    def __call__(self, source, *cflags: str, **load_options):
        from .elf import load_object
        return load_object(self.path(source, *cflags), **load_options)


@pytest.fixture(scope="session")
def bpf_build_dir(tmp_path_factory) -> Path:
    """Where compiled objects are cached for the session."""
    return tmp_path_factory.mktemp("bpf-objects")


@pytest.fixture
def bpf_compile(bpf_build_dir, request) -> _Compiler:
    """Compile a C source (relative to the test file's directory) into a loaded ObjectSpec."""
    return _Compiler(bpf_build_dir, Path(str(request.fspath)).parent)


@pytest.fixture
def bpf_object():
    from .elf import load_object
    return load_object


def _kernel_reason() -> str | None:
    try:
        from .kernel import features
    except ImportError as exc:
        return f"pybpf.kernel unavailable: {exc}"
    return features.bpf_unavailable_reason()


@pytest.fixture
def bpf_kernel():
    """Factory: load an ObjectSpec into the kernel; everything is closed at teardown."""
    reason = _kernel_reason()
    if reason:
        pytest.skip(reason)
    from .elf.collection import KernelCollection
    made: list[KernelCollection] = []

    def load(spec, **options) -> KernelCollection:
        coll = KernelCollection(spec, **options)
        made.append(coll)
        return coll

    yield load
    for coll in made:
        coll.close()


@pytest.fixture
def bpf_vm():
    """Factory: load an ObjectSpec into pybpf's interpreter."""
    try:
        from .elf.collection import VMCollection
        import pybpf.vm  # noqa: F401  (the interpreter must be importable)
    except ImportError as exc:
        pytest.skip(f"pybpf.vm unavailable: {exc}")
    return lambda spec, **options: VMCollection(spec, **options)


def build_packet(proto: str = "udp", src: str = "10.0.0.1", dst: str = "10.0.0.2",
                 sport: int = 1234, dport: int = 53, payload: bytes = b"hello",
                 ttl: int = 64, eth_src: bytes = b"\x02\x00\x00\x00\x00\x01",
                 eth_dst: bytes = b"\x02\x00\x00\x00\x00\x02", ipv6: bool | None = None) -> bytes:
    """An Ethernet frame carrying IPv4 or IPv6 with a TCP, UDP or ICMP payload (or raw
    ``proto='arp'`` / any EtherType number as ``proto=0x88b5``)."""
    import dpkt

    if isinstance(proto, int):
        return bytes(dpkt.ethernet.Ethernet(src=eth_src, dst=eth_dst, type=proto, data=payload))
    if proto == "arp":
        return bytes(dpkt.ethernet.Ethernet(src=eth_src, dst=eth_dst, type=0x0806,
                                            data=bytes(dpkt.arp.ARP())))
    v6 = ipv6 if ipv6 is not None else ":" in src
    if proto == "tcp":
        l4 = dpkt.tcp.TCP(sport=sport, dport=dport, flags=dpkt.tcp.TH_SYN, data=payload)
        number = 6
    elif proto == "udp":
        l4 = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
        l4.ulen = 8 + len(payload)
        number = 17
    elif proto == "icmp":
        l4 = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=payload))
        number = 1
    else:
        raise ValueError(f"unknown protocol {proto!r}")
    if v6:
        ip = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, src),
                          dst=socket.inet_pton(socket.AF_INET6, dst), nxt=number, hlim=ttl,
                          data=l4, plen=len(bytes(l4)))
        etype = 0x86DD
    else:
        ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=number, ttl=ttl,
                        data=l4)
        ip.len = 20 + len(bytes(l4))
        etype = 0x0800
    return bytes(dpkt.ethernet.Ethernet(src=eth_src, dst=eth_dst, type=etype, data=ip))


@pytest.fixture
def bpf_packet():
    """Factory building Ethernet frames: ``bpf_packet(proto="tcp", src="10.1.2.3", dport=80)``."""
    return build_packet
