"""Realistic frames for comparing filters: Ethernet (optionally with 802.1Q/802.1ad tags,
MPLS labels or PPPoE session headers) carrying IPv4/IPv6/ARP with TCP/UDP/ICMP/ICMPv6/SCTP,
built with dpkt; field values are drawn from small pools that contain the corpus's constants
so that filters match often; a fraction of frames is truncated. The same frames are re-framed
for RAW, LINUX_SLL, LINUX_SLL2 and NULL link types."""

from __future__ import annotations

import ipaddress
import random
import struct

import dpkt
from hypothesis import strategies as st

IP4 = ["10.0.0.1", "10.0.0.2", "192.168.1.2", "192.168.5.5", "172.16.0.1", "172.16.1.9",
       "8.8.8.8", "224.0.0.5", "255.255.255.255", "0.0.0.0", "10.1.2.3", "192.168.1.255"]
IP6 = ["2001:db8::1", "2001:db8:1::5", "2001:db8:8000::1", "fe80::1", "::1", "ff02::1",
       "2001:db9::1", "2001:db8:1:2::3"]
MACS = ["00:11:22:33:44:55", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "02:aa:bb:cc:dd:ee",
        "00:11:22:33:44:66"]
PORTS = [80, 22, 443, 53, 67, 68, 9, 10, 15, 20, 21, 1000, 1500, 2000, 2001, 50, 55, 60,
         6081, 12345, 1023, 65535]
VLANS = [5, 6, 10, 100]
ETHERTYPES = [0x0800, 0x86DD, 0x0806, 0x8035, 0x8100, 0x88A8, 0x9100, 0x8847, 0x8863,
              0x8864, 0x1234]


def mac(s: str) -> bytes:
    return bytes(int(x, 16) for x in s.split(":"))


def transport(rnd: random.Random, proto: int, v6: bool, extras: bool = True) -> bytes:
    payload = bytes(rnd.getrandbits(8) for _ in range(rnd.choice([0, 0, 4, 12, 30])))
    if proto == 6:
        t = dpkt.tcp.TCP(sport=rnd.choice(PORTS), dport=rnd.choice(PORTS),
                         flags=rnd.choice([0x02, 0x12, 0x10, 0x04, 0x18, 0x11, rnd.getrandbits(8)]),
                         seq=rnd.getrandbits(32), data=payload)
        if rnd.random() < 0.2:
            t.opts = b"\x01\x01\x01\x01" * rnd.choice([1, 2])
            t.off = 5 + len(t.opts) // 4
        if rnd.random() < 0.1:
            t.data = b"\x47" + payload
        return bytes(t)
    if proto == 17:
        sport, dport = rnd.choice(PORTS), rnd.choice(PORTS)
        if extras and rnd.random() < 0.2:   # geneve: options of 0..5 words, then a frame or a packet
            dport = 6081
            payload = geneve(rnd) + payload
        if rnd.random() < 0.1:
            payload = struct.pack(">I", 0x12345678) + payload
        return bytes(dpkt.udp.UDP(sport=sport, dport=dport, data=payload))
    if proto == 1:
        t = rnd.choice([0, 8, 3, 11, 5])
        return bytes(dpkt.icmp.ICMP(type=t, code=rnd.choice([0, 1]), data=b"\0\0\0\0" + payload))
    if proto == 58:
        t = rnd.choice([128, 129, 135, 1])
        return bytes(dpkt.icmp6.ICMP6(type=t, code=0, data=b"\0\0\0\0" + payload))
    if proto == 132:
        return struct.pack(">HHII", rnd.choice(PORTS), rnd.choice(PORTS), 1, 0) + payload
    return payload


_NESTED = [False]
EXT_HEADERS = [0, 60, 43, 44]


def ext_chain(rnd: random.Random, headers=EXT_HEADERS) -> tuple[int, bytes]:
    """1..5 IPv6 extension headers (hop-by-hop, destination options, routing, fragment) of 8
    or 16 bytes, or AH headers (12 or 16 bytes; used after IPv4), then TCP, UDP, ICMPv6 or
    nothing: (first next header, bytes). pybpf's protochain follows at most 5 headers
    (codegen.PROTOCHAIN_DEPTH); libpcap's walk measures the header after an AH from the
    network header, so in IPv6 it wanders into the addresses and the walk can get long."""
    last = rnd.choice([6, 17, 58, 59])
    body = transport(rnd, last, True) if last != 59 else b""
    nxt = last
    count = rnd.randint(1, 5)
    for i in range(count):
        h = rnd.choice(headers)
        if h == 51:
            words = rnd.choice([1, 2])           # AH length in 4-byte words minus 2
            hdr = bytes([nxt, words]) + bytes(4 * (words + 2) - 2)
        else:
            units = rnd.choice([0, 0, 1])        # length in 8-byte units minus 1
            hdr = bytes([nxt, units]) + bytes(8 * (units + 1) - 2)
        body = hdr + body
        nxt = h
    return nxt, body


def geneve(rnd: random.Random) -> bytes:
    """A Geneve header (version 0, or 1 now and then), options of random length, and an
    inner Ethernet frame (type 0x6558), IPv4 or IPv6 packet, or unknown payload."""
    words = rnd.choice([0, 0, 1, 2, 5])
    kind = rnd.choice([0x6558, 0x6558, 0x0800, 0x86DD, 0x1234])
    hdr = struct.pack(">BBHI", words | rnd.choice([0, 0, 0, 0x40]), 0, kind,
                      rnd.choice([77, 78, 5, 1]) << 8)
    hdr += bytes(rnd.getrandbits(8) for _ in range(4 * words))
    if _NESTED[0]:
        return hdr
    _NESTED[0] = True
    try:
        if kind == 0x6558:
            inner = ethernet_frame(rnd)
        elif kind in (0x0800, 0x86DD):
            inner = network(rnd, kind)
        else:
            inner = bytes(rnd.getrandbits(8) for _ in range(20))
    finally:
        _NESTED[0] = False
    return hdr + inner


def network(rnd: random.Random, ethertype: int, extras: bool = True) -> bytes:
    """A network-layer packet; ``extras`` adds tunnels (Geneve) and header chains (IPv6
    extension headers, AH) that tcpdump prints on several lines."""
    if ethertype == 0x0800:
        proto = rnd.choice([6, 6, 17, 17, 1, 132, 2, 47])
        ip = dpkt.ip.IP(src=ipaddress.IPv4Address(rnd.choice(IP4)).packed,
                        dst=ipaddress.IPv4Address(rnd.choice(IP4)).packed, p=proto,
                        ttl=rnd.choice([1, 63, 64, 128]), tos=rnd.choice([0, 0x10, 0x11, 0xb8]),
                        data=transport(rnd, proto, False, extras))
        if rnd.random() < 0.15:
            ip.opts = b"\x01\x01\x01\x00" * rnd.choice([1, 2])
            ip.hl = 5 + len(ip.opts) // 4
        if extras and rnd.random() < 0.1:   # IPv4 with an AH header (protochain follows it)
            nh, body = ext_chain(rnd, headers=[51])
            ip.p, ip.data = 51, body
        raw = bytearray(bytes(ip))
        if rnd.random() < 0.1:   # fragments (MF, an offset) and DF
            raw[6:8] = struct.pack(">H", rnd.choice([0x2000, 0x0010, 0x4000]))
        return bytes(raw)
    if ethertype == 0x86DD:
        nh = rnd.choice([6, 17, 58, 132, 44, 0])
        inner = transport(rnd, nh if nh not in (44, 0) else 6, True, extras)
        if nh == 44:
            inner_nh = rnd.choice([6, 17, 58])
            inner = struct.pack(">BBHI", inner_nh, 0, 0, 1) + transport(rnd, inner_nh, True, extras)
        if extras and rnd.random() < 0.25:   # a chain of extension headers (and AH) for protochain
            nh, inner = ext_chain(rnd)
        ip6 = dpkt.ip6.IP6(src=ipaddress.IPv6Address(rnd.choice(IP6)).packed,
                           dst=ipaddress.IPv6Address(rnd.choice(IP6)).packed, nxt=nh,
                           hlim=64, plen=len(inner), data=b"")
        return bytes(ip6)[:40] + inner
    if ethertype in (0x0806, 0x8035):
        arp = dpkt.arp.ARP(op=rnd.choice([1, 2, 3]),
                           spa=ipaddress.IPv4Address(rnd.choice(IP4)).packed,
                           tpa=ipaddress.IPv4Address(rnd.choice(IP4)).packed,
                           sha=mac(rnd.choice(MACS)), tha=mac(rnd.choice(MACS)))
        return bytes(arp)
    return bytes(rnd.getrandbits(8) for _ in range(rnd.choice([4, 20, 46])))


def geneve_frame(rnd: random.Random) -> bytes:
    """Ethernet / IPv4 (with or without options) or IPv6 / UDP port 6081 / Geneve / inner."""
    udp = bytes(dpkt.udp.UDP(sport=rnd.choice(PORTS), dport=6081, data=geneve(rnd)))
    if rnd.random() < 0.6:
        ip = dpkt.ip.IP(src=ipaddress.IPv4Address(rnd.choice(IP4)).packed,
                        dst=ipaddress.IPv4Address(rnd.choice(IP4)).packed, p=17, data=udp)
        if rnd.random() < 0.3:
            ip.opts = b"\x01\x01\x01\x00" * rnd.choice([1, 2])
            ip.hl = 5 + len(ip.opts) // 4
        body, etype = bytes(ip), 0x0800
    else:
        ip6 = dpkt.ip6.IP6(src=ipaddress.IPv6Address(rnd.choice(IP6)).packed,
                           dst=ipaddress.IPv6Address(rnd.choice(IP6)).packed, nxt=17,
                           hlim=64, plen=len(udp), data=b"")
        body, etype = bytes(ip6)[:40] + udp, 0x86DD
    frame = mac(rnd.choice(MACS)) + mac(rnd.choice(MACS)) + struct.pack(">H", etype) + body
    if rnd.random() < 0.08:
        frame = frame[:rnd.randrange(0, len(frame) + 1)]
    return frame


LLC_SAPS = [0x42, 0xFE, 0xE0, 0x06, 0xF0, 0x01, 0x00, 0x05]
LLC_CONTROLS = [0x03, 0x00, 0x01, 0x05, 0x09, 0x63, 0xAF, 0xE3, 0x02, 0x13, 0x43, 0x0F]
SNAPS = [(0, 0x8137), (0x080007, 0x809B), (0, 0x80F3), (0, 0x0800), (0x080007, 0x80F3)]


def llc_frame(rnd: random.Random) -> bytes:
    """IEEE 802.3: a length in the type field, then 802.2 LLC (a SAP, or SNAP with an OUI
    and an ethertype) or Novell's raw 802.3 (0xffff)."""
    kind = rnd.choice(["sap", "sap", "snap", "raw"])
    if kind == "sap":
        dsap = rnd.choice(LLC_SAPS)
        ssap = dsap if rnd.random() < 0.8 else rnd.choice(LLC_SAPS)
        body = bytes([dsap, ssap, rnd.choice(LLC_CONTROLS)])
    elif kind == "snap":
        oui, etype = rnd.choice(SNAPS)
        body = b"\xaa\xaa\x03" + oui.to_bytes(3, "big") + struct.pack(">H", etype)
    else:
        body = b"\xff\xff"
    body += bytes(rnd.getrandbits(8) for _ in range(rnd.choice([0, 4, 30])))
    length = rnd.choice([len(body), 46, 1500])
    return mac(rnd.choice(MACS)) + mac(rnd.choice(MACS)) + struct.pack(">H", length) + body


def ethernet_frame(rnd: random.Random) -> bytes:
    if not _NESTED[0] and rnd.random() < 0.15:
        return geneve_frame(rnd)
    if rnd.random() < 0.1:
        return llc_frame(rnd)
    inner_type = rnd.choice([0x0800, 0x0800, 0x86DD, 0x86DD, 0x0806, 0x8035, 0x1234])
    body = network(rnd, inner_type)
    encaps = rnd.choice(["none"] * 6 + ["vlan", "vlan2", "mpls", "mpls2", "pppoes", "pppoed"])
    etype = inner_type
    if encaps in ("vlan", "vlan2"):
        for _ in range(1 if encaps == "vlan" else 2):
            tci = rnd.choice(VLANS) | (rnd.choice([0, 1, 7]) << 13)
            body = struct.pack(">HH", tci, etype) + body
            etype = rnd.choice([0x8100, 0x88A8, 0x9100])
    elif encaps in ("mpls", "mpls2") and inner_type in (0x0800, 0x86DD):
        labels = [rnd.choice([5, 100, 7])] * (1 if encaps == "mpls" else 2)
        stack = b""
        for i, lbl in enumerate(labels):
            bos = 1 if i == len(labels) - 1 else 0
            stack += struct.pack(">I", (lbl << 12) | (bos << 8) | 64)
        body = stack + body
        etype = 0x8847
    elif encaps == "pppoes" and inner_type in (0x0800, 0x86DD):
        ppp = 0x21 if inner_type == 0x0800 else 0x57
        body = struct.pack(">BBHHH", 0x11, 0, rnd.choice([3, 4]), len(body) + 2, ppp) + body
        etype = 0x8864
    elif encaps == "pppoed":
        etype = 0x8863
    frame = mac(rnd.choice(MACS)) + mac(rnd.choice(MACS)) + struct.pack(">H", etype) + body
    if rnd.random() < 0.08:
        frame = frame[:rnd.randrange(0, len(frame) + 1)]
    return frame


def reframe(frame: bytes, linktype: str) -> bytes:
    """The same packet under another link-layer header (or none)."""
    etype = struct.unpack(">H", frame[12:14])[0] if len(frame) >= 14 else 0
    payload = frame[14:]
    if linktype == "EN10MB":
        return frame
    if linktype == "RAW":
        return payload
    if etype <= 1500 and linktype in ("LINUX_SLL", "LINUX_SLL2"):
        # Linux reports 802.3 frames as LINUX_SLL_P_802_2, or _802_3 for Novell's raw frames
        etype = 1 if payload[:2] == b"\xff\xff" else 4
    if linktype == "LINUX_SLL":
        return struct.pack(">HHH", 0, 1, 6) + frame[6:12] + b"\0\0" + struct.pack(">H", etype) + payload
    if linktype == "LINUX_SLL2":
        return struct.pack(">HHIHBB", etype, 0, 2, 1, 0, 6) + frame[6:12] + b"\0\0" + payload
    if linktype == "NULL":
        af = {0x0800: 2, 0x86DD: 30}.get(etype, 24 if etype == 0x1234 else 7)
        return struct.pack("<I", af) + payload
    raise ValueError(linktype)


@st.composite
def frames(draw, linktype: str = "EN10MB"):
    seed = draw(st.integers(0, 2**32 - 1))
    return reframe(ethernet_frame(random.Random(seed)), linktype)


def frame_pool(n: int, seed: int = 1, linktype: str = "EN10MB") -> list[bytes]:
    rnd = random.Random(seed)
    return [reframe(ethernet_frame(rnd), linktype) for _ in range(n)]
