"""One line per packet in the style of ``tcpdump -nn`` (tcpdump's print-*.c behaviour, decoded
with dpkt and struct): IPv4/IPv6 with TCP (flags, relative sequence numbers per connection,
options), UDP, ICMP, ICMPv6 (echo, neighbour discovery, MLDv2), and ARP, over Ethernet, raw IP,
Linux cooked captures (v1 and v2) and BSD loopback."""

from __future__ import annotations

import ipaddress
import socket
import struct
import time

from .pcapfile import Packet


def fmt_time(pkt: Packet) -> str:
    t = time.localtime(pkt.sec)
    return f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{pkt.nsec // 1000:06d}"


def summary_line(pkt: Packet, summary: str) -> str:
    return f"{fmt_time(pkt)} {summary}"


def ip4(b: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, b)


def ip6(b: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, b)


def mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


_TCP_FLAGS = [(0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "."), (0x20, "U"),
              (0x40, "E"), (0x80, "W")]
_ICMP_UNREACH = {0: "net {} unreachable", 1: "host {} unreachable", 3: "{} port {} unreachable"}
_ICMP6_NAMES = {133: "router solicitation", 134: "router advertisement",
                137: "redirect", 130: "multicast listener query",
                131: "multicast listener report", 132: "multicast listener done"}
_HTTP_PORTS = {80, 8080, 3128}
_HTTP_STARTS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"HTTP/")
_SLL_DIR = {0: "In ", 1: "B  ", 2: "M  ", 3: "P  ", 4: "Out"}


class Summarizer:
    """Keeps the per-connection state tcpdump keeps (TCP initial sequence numbers)."""

    def __init__(self, linktype: int):
        self.linktype = linktype
        self.tcp_seq: dict[tuple, tuple[int, int]] = {}

    def __call__(self, pkt: Packet) -> str:
        try:
            return self.link(pkt.data, pkt.wirelen)
        except (IndexError, struct.error, ValueError):
            return f"[|truncated] length {pkt.wirelen}"

    # --- link layer ----------------------------------------------------------------------
    def link(self, data: bytes, wirelen: int) -> str:
        lt = self.linktype
        if lt == 1:
            etype = struct.unpack_from(">H", data, 12)[0]
            off = 14
            while etype in (0x8100, 0x88A8, 0x9100):
                tci = struct.unpack_from(">H", data, off)[0]
                inner = struct.unpack_from(">H", data, off + 2)[0]
                return (f"vlan {tci & 0xfff}, p {tci >> 13}, ethertype "
                        f"{self.ethertype_name(inner)}, " + self.network(inner, data[off + 4:], wirelen - off - 4))
            return self.network(etype, data[off:], wirelen - off)
        if lt in (101, 12, 14):
            v = data[0] >> 4
            return self.network(0x0800 if v == 4 else 0x86DD if v == 6 else 0, data, wirelen)
        if lt == 113:
            etype = struct.unpack_from(">H", data, 14)[0]
            return self.network(etype, data[16:], wirelen - 16)
        if lt == 276:
            etype, _, ifindex = struct.unpack_from(">HHI", data, 0)
            ptype = data[10]
            try:
                name = socket.if_indextoname(ifindex)
            except OSError:
                name = f"ifindex {ifindex}"
            return f"{name}  {_SLL_DIR.get(ptype, '?  ')} " + self.network(etype, data[20:], wirelen - 20)
        if lt == 0:
            af = struct.unpack_from("<I", data, 0)[0]
            etype = 0x0800 if af == 2 else 0x86DD if af in (10, 24, 28, 30) else 0
            return self.network(etype, data[4:], wirelen - 4)
        return f"link type {lt}, length {wirelen}"

    @staticmethod
    def ethertype_name(etype: int) -> str:
        return {0x0800: "IPv4", 0x86DD: "IPv6", 0x0806: "ARP"}.get(etype, f"0x{etype:04x}")

    def network(self, etype: int, data: bytes, length: int) -> str:
        if etype == 0x0800:
            return self.ipv4(data)
        if etype == 0x86DD:
            return self.ipv6(data)
        if etype in (0x0806, 0x8035):
            return self.arp(data, length, etype)
        return f"ethertype 0x{etype:04x}, length {length + 14}"

    # --- ARP -------------------------------------------------------------------------------
    def arp(self, data: bytes, length: int, etype: int) -> str:
        name = "ARP"   # tcpdump names RARP frames ARP too; the operation tells them apart
        hrd, pro, hln, pln, op = struct.unpack_from(">HHBBH", data, 0)
        if pro != 0x0800 or pln != 4:
            return f"{name}, length {length}"
        sha = data[8:8 + hln]
        spa = data[8 + hln:12 + hln]
        tha = data[12 + hln:12 + 2 * hln]
        tpa = data[12 + 2 * hln:16 + 2 * hln]
        if op == 1:
            known = f" ({mac(tha)})" if any(tha) else ""
            return f"{name}, Request who-has {ip4(tpa)}{known} tell {ip4(spa)}, length {length}"
        if op == 2:
            return f"{name}, Reply {ip4(spa)} is-at {mac(sha)}, length {length}"
        if op == 3:
            return f"{name}, Reverse Request who-is {mac(tha)} tell {mac(sha)}, length {length}"
        if op == 4:
            return f"{name}, Reverse Reply {mac(tha)} at {ip4(tpa)}, length {length}"
        return f"{name}, op {op}, length {length}"

    # --- IP ----------------------------------------------------------------------------------
    def ipv4(self, data: bytes) -> str:
        ihl = (data[0] & 0xF) * 4
        total, frag = struct.unpack_from(">H2xH", data, 2)
        proto = data[9]
        src, dst = ip4(data[12:16]), ip4(data[16:20])
        payload = data[ihl:total]
        plen = total - ihl
        if frag & 0x1FFF:
            return f"IP {src} > {dst}: ip-proto-{proto}"
        return "IP " + self.transport(proto, src, dst, payload, plen, v6=False)

    def ipv6(self, data: bytes) -> str:
        plen = struct.unpack_from(">H", data, 4)[0]
        nh = data[6]
        src, dst = ip6(data[8:24]), ip6(data[24:40])
        off = 40
        prefix = ""
        if nh == 0:   # hop-by-hop options
            prefix = "HBH "
            nh, hlen = data[off], (data[off + 1] + 1) * 8
            off += hlen
            plen -= hlen
        return "IP6 " + self.transport(nh, src, dst, data[off:off + plen], plen, v6=True,
                                       prefix=prefix)

    def transport(self, proto, src, dst, p: bytes, plen: int, *, v6: bool, prefix="") -> str:
        if proto == 6:
            return self.tcp(src, dst, p, plen)
        if proto == 17:
            sport, dport, ulen = struct.unpack_from(">HHH", p, 0)
            return f"{src}.{sport} > {dst}.{dport}: {prefix}UDP, length {ulen - 8}"
        if proto == 1 and not v6:
            return f"{src} > {dst}: {prefix}" + self.icmp(p, plen)
        if proto == 58 and v6:
            return f"{src} > {dst}: {prefix}" + self.icmp6(p, plen)
        if proto == 132:
            sport, dport = struct.unpack_from(">HH", p, 0)
            return f"{src}.{sport} > {dst}.{dport}: {prefix}sctp"
        return f"{src} > {dst}: {prefix}ip-proto-{proto} {plen}"

    def tcp(self, src, dst, p: bytes, plen: int) -> str:
        sport, dport, seq, ack, offflags, win, _, urg = struct.unpack_from(">HHIIHHHH", p, 0)
        doff = (offflags >> 12) * 4
        flags = offflags & 0xFF
        length = plen - doff
        fl = "".join(ch for bit, ch in _TCP_FLAGS if flags & bit) or "none"
        out = f"{src}.{sport} > {dst}.{dport}: Flags [{fl}]"
        if flags & 0x10:
            key = (src, sport, dst, dport)
            rkey = (dst, dport, src, sport)
            if key in self.tcp_seq:
                base_seq, base_ack = self.tcp_seq[key]
                seq, ack = (seq - base_seq) & 0xFFFFFFFF, (ack - base_ack) & 0xFFFFFFFF
            elif rkey in self.tcp_seq:
                base_ack, base_seq = self.tcp_seq[rkey]
                seq, ack = (seq - base_seq) & 0xFFFFFFFF, (ack - base_ack) & 0xFFFFFFFF
            else:
                self.tcp_seq[key] = (seq, (ack - 1) & 0xFFFFFFFF)
        if length > 0 or flags & 0x07:
            out += f", seq {seq}"
            if length > 0:
                out += f":{(seq + length) & 0xFFFFFFFF}"
        if flags & 0x10:
            out += f", ack {ack}"
        out += f", win {win}"
        if flags & 0x20:
            out += f", urg {urg}"
        opts = self.tcp_options(p[20:doff])
        if opts:
            out += f", options [{opts}]"
        out += f", length {length}"
        if length > 0 and (sport in _HTTP_PORTS or dport in _HTTP_PORTS):
            body = p[doff:doff + length]
            if body.startswith(_HTTP_STARTS):
                out += ": HTTP: " + body.split(b"\r\n", 1)[0].decode("latin-1")
        return out

    @staticmethod
    def tcp_options(o: bytes) -> str:
        out, i = [], 0
        while i < len(o):
            kind = o[i]
            if kind == 0:
                out.append("eol")
                break
            if kind == 1:
                out.append("nop")
                i += 1
                continue
            ln = o[i + 1] if i + 1 < len(o) else 0
            body = o[i + 2:i + ln]
            if kind == 2 and ln == 4:
                out.append(f"mss {struct.unpack('>H', body)[0]}")
            elif kind == 3 and ln == 3:
                out.append(f"wscale {body[0]}")
            elif kind == 4:
                out.append("sackOK")
            elif kind == 8 and ln == 10:
                val, ecr = struct.unpack(">II", body)
                out.append(f"TS val {val} ecr {ecr}")
            elif kind == 5:
                blocks = [struct.unpack_from(">II", body, j) for j in range(0, len(body) - 7, 8)]
                out.append(f"sack {len(blocks)} " + " ".join(f"{{{a}:{b}}}" for a, b in blocks))
            else:
                out.append(f"unknown-{kind} 0x{body.hex()}" if body else f"unknown-{kind}")
            if ln < 2:
                break
            i += ln
        return ",".join(out)

    def icmp(self, p: bytes, plen: int) -> str:
        t, code = p[0], p[1]
        if t in (0, 8):
            ident, seq = struct.unpack_from(">HH", p, 4)
            kind = "echo reply" if t == 0 else "echo request"
            return f"ICMP {kind}, id {ident}, seq {seq}, length {plen}"
        if t == 3 and code == 3:
            inner = p[8:]
            ihl = (inner[0] & 0xF) * 4
            idst = ip4(inner[16:20])
            iproto = {17: "udp", 6: "tcp"}.get(inner[9], f"ip-proto-{inner[9]}")
            dport = struct.unpack_from(">H", inner, ihl + 2)[0]
            return f"ICMP {idst} {iproto} port {dport} unreachable, length {plen}"
        if t == 11:
            what = "ip reassembly time exceeded" if code == 1 else "time exceeded in-transit"
            return f"ICMP {what}, length {plen}"
        return f"ICMP type-#{t}, length {plen}"

    def icmp6(self, p: bytes, plen: int) -> str:
        t = p[0]
        if t in (128, 129):
            ident, seq = struct.unpack_from(">HH", p, 4)
            kind = "echo request" if t == 128 else "echo reply"
            return f"ICMP6, {kind}, id {ident}, seq {seq}, length {plen}"
        if t == 135:
            return f"ICMP6, neighbor solicitation, who has {ip6(p[8:24])}, length {plen}"
        if t == 136:
            return f"ICMP6, neighbor advertisement, tgt is {ip6(p[8:24])}, length {plen}"
        if t == 143:
            n = struct.unpack_from(">H", p, 6)[0]
            return f"ICMP6, multicast listener report v2, {n} group record(s), length {plen}"
        if t == 1 and p[1] == 4:
            inner = p[8:]
            idst = ip6(inner[24:40])
            iproto = {17: "udp", 6: "tcp"}.get(inner[6], f"ip-proto-{inner[6]}")
            dport = struct.unpack_from(">H", inner, 42)[0]
            return (f"ICMP6, destination unreachable, unreachable port, {idst} {iproto} port "
                    f"{dport}, length {plen}")
        if t in _ICMP6_NAMES:
            return f"ICMP6, {_ICMP6_NAMES[t]}, length {plen}"
        return f"ICMP6, type {t}, length {plen}"
