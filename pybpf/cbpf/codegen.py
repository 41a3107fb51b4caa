"""pcap-filter(7) syntax tree -> boolean tests over packet values -> classic BPF.

The compiler works in two layers, as libpcap's gencode.c does, but with plainer data:

* this module turns each primitive (``tcp port 80``, ``net 10.0.0.0/8``, ``ip[2:2] > 40``,
  ``vlan 5``...) into a boolean formula of *atoms* for the current link type. An atom is one
  comparison of a packet *value* with a constant or with another value. Values are pure
  functions of the packet, written as hashable tuples:

  ``("abs", size, off)`` load at a fixed offset; ``("ind", size, off, xv)`` load at X + off
  where X holds the value ``xv``; ``("msh", off)`` the IPv4 header length ``4*([off]&0xf)``;
  ``("len",)`` packet length; ``("k", c)`` a constant; ``("anc", field)`` Linux metadata;
  ``("alu", op, a, b)`` and ``("neg", a)`` arithmetic; ``("mem", name)`` a scratch word.

  Offsets that depend on the path taken (geneve's inner packet after an IPv4 or an IPv6
  outer header, with or without an inner Ethernet header; protochain's header walk) are
  stored by ``("set", name, value)`` atoms, which are always true, into scratch words that
  later loads index from -- libpcap keeps them in registers the same way. Each name is
  stored at most once on any path, so facts about ``("mem", name)`` values stay valid.

* :mod:`.optimizer` turns the formula into a decision graph, simplifies it and emits code.

Which tests a primitive makes, and in which order, follows libpcap (the reference output is
``tcpdump -d``); the behaviour was learnt from tcpdump's output and pcap-filter(7).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

from ..errors import FilterError
from . import isa
from .parser import (And, Arith, BinOp, Length, Negate, Node, Not, Num, Or, PacketLoad,
                     Primitive, Quals, Relation, parse)

# --- boolean formula -----------------------------------------------------------------------
TRUE = ("const", True)
FALSE = ("const", False)


def b_and(*xs):
    out = None
    for x in xs:
        out = x if out is None else ("and", out, x)
    return out if out is not None else TRUE


def b_or(*xs):
    out = None
    for x in xs:
        out = x if out is None else ("or", out, x)
    return out if out is not None else FALSE


def b_not(x):
    return ("not", x)


def test(jop: str, value, k: int):
    return ("atom", ("test", jop, value, k & isa.U32))


def eq(value, k):
    return test("jeq", value, k)


def ld(size: int, off: int):
    return ("abs", size, off)


def masked_eq(value, mask: int, k: int):
    """``value & mask == k`` (a jset when k is 0 and mask one comparison, like libpcap)."""
    mask &= isa.U32
    if mask == isa.U32:
        return eq(value, k)
    if k == 0:
        return b_not(test("jset", value, mask))
    if k == mask and mask & (mask - 1) == 0:
        return test("jset", value, mask)
    return eq(("alu", "and", value, ("k", mask)), k)


# --- link types ----------------------------------------------------------------------------
LINKTYPES = {"EN10MB": 1, "RAW": 12, "LINUX_SLL": 113, "LINUX_SLL2": 276, "NULL": 0}
LINKTYPE_ALIASES = {"ETHER": "EN10MB", "ETHERNET": "EN10MB", "SLL": "LINUX_SLL",
                    "SLL2": "LINUX_SLL2", "LOOP": "NULL", "IPV4": "RAW"}
#: pcap file LINKTYPE_ values (RAW is 101 in files, DLT_RAW 12 in the API)
FILE_LINKTYPES = {1: "EN10MB", 101: "RAW", 12: "RAW", 14: "RAW", 113: "LINUX_SLL",
                  276: "LINUX_SLL2", 0: "NULL"}


def linktype_name(linktype: str | int) -> str:
    if isinstance(linktype, int):
        if linktype in FILE_LINKTYPES:
            return FILE_LINKTYPES[linktype]
        raise FilterError(f"link type {linktype} is not supported "
                          f"(supported: {', '.join(LINKTYPES)})")
    name = linktype.upper()
    name = LINKTYPE_ALIASES.get(name, name)
    if name not in LINKTYPES:
        raise FilterError(f"unknown link type '{linktype}' (supported: {', '.join(LINKTYPES)})")
    return name


ETHERTYPE = {"ip": 0x0800, "ip6": 0x86DD, "arp": 0x0806, "rarp": 0x8035}
ETHERTYPE_NAMES = {"ip": 0x0800, "ip6": 0x86DD, "arp": 0x0806, "rarp": 0x8035,
                   "atalk": 0x809B, "aarp": 0x80F3, "ipx": 0x8137, "decnet": 0x6003,
                   "lat": 0x6004, "sca": 0x6007, "moprc": 0x6002, "mopdl": 0x6001,
                   "loopback": 0x9000, "vlan": 0x8100, "mpls": 0x8847,
                   # names libpcap finds in its LLC SAP table (pcap_nametollc)
                   "iso": 0xFE, "stp": 0x42, "netbeui": 0xF0}
ETHERTYPE_NAMES["ipx"] = 0xE0      # LLCSAP_IPX: libpcap has no ethertype named "ipx"
#: protocols usable alone that are an ethertype or an 802.2 SAP (libpcap's gen_linktype)
LINK_PROTOCOLS = {"decnet": 0x6003, "lat": 0x6004, "sca": 0x6007, "moprc": 0x6002,
                  "mopdl": 0x6001, "atalk": 0x809B, "aarp": 0x80F3, "iso": 0xFE, "stp": 0x42,
                  "ipx": 0xE0, "netbeui": 0xF0}
#: link-layer qualifiers: ``X proto N`` is the link type test for all of them (gen_linktype)
LINK_LAYER_QUALS = ("ether", "link", "ppp", "slip", "fddi", "tr", "wlan")
#: IPv6 extension headers protochain steps over (hop-by-hop, destination options, routing,
#: fragment); AH (51) is followed too, with its own length unit
IP6_EXTENSION_HEADERS = (0, 60, 43, 44)
#: how many headers ``protochain`` follows (libpcap loops without a bound)
PROTOCHAIN_DEPTH = 5
#: ethertypes that also travel in 802.2 SNAP frames: (OUI, type) (libpcap's gen_linktype)
LLC_SNAP = {0x809B: (0x080007, 0x809B), 0x80F3: (0, 0x80F3)}
IPPROTO = {"icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "egp": 8, "igrp": 9, "udp": 17,
           "ipv6": 41, "rsvp": 46, "gre": 47, "esp": 50, "ah": 51, "icmp6": 58, "ipv6-icmp": 58,
           "ospf": 89, "pim": 103, "vrrp": 112, "carp": 112, "sctp": 132}
#: NULL/loopback address families libpcap accepts for IPv6 (BSD variants), byte-swapped
NULL_AF_IP6 = (30, 24, 28)
SERVICES = {"ftp-data": 20, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53,
            "tftp": 69, "http": 80, "www": 80, "pop3": 110, "ntp": 123, "imap": 143,
            "snmp": 161, "bgp": 179, "https": 443, "syslog": 514, "bootps": 67, "bootpc": 68}


@dataclass
class LinkState:
    """Where the link-layer type field and the network header are, which changes as
    ``vlan``, ``mpls`` and ``pppoes`` are seen (libpcap's off_linktype / off_linkpl)."""

    name: str
    off_linktype: int
    off_nl: int
    encap: str = "link"        # 'link', 'mpls' (label stack), 'ppp' (inside PPPoE)
    #: after ``geneve``: the inner packet's offsets are not constants but values kept in
    #: scratch words (libpcap's registers for off_linkhdr/off_linktype/off_linkpl):
    #: {"ll": link header, "lt": type field, "nl": network header} -> ("mem", name)
    vars: dict | None = None


def _initial_state(name: str) -> LinkState:
    return {
        "EN10MB": LinkState(name, 12, 14),
        "LINUX_SLL": LinkState(name, 14, 16),
        "LINUX_SLL2": LinkState(name, 0, 20),
        "RAW": LinkState(name, -1, 0),
        "NULL": LinkState(name, 0, 4),
    }[name]


@dataclass
class CodeGen:
    expr: str
    link: LinkState
    linux_ext: bool = False
    netmask: int = 0
    pos: int = 0
    chains: int = 0                # protochain walks so far (names their scratch words)
    geneve_seen: bool = False
    geneve_used: bool = False      # did a primitive after 'geneve' look at the inner packet?
    extra: dict = field(default_factory=dict)

    def error(self, message: str, pos: int | None = None) -> FilterError:
        return FilterError(message, self.expr, self.pos if pos is None else pos)

    # --- link layer ------------------------------------------------------------------
    @property
    def nl(self) -> int:
        return self.link.off_nl

    def linktype(self, proto: int):
        """The packet's network protocol is ``proto`` (an ethertype)."""
        link = self.link
        if link.vars is not None:
            # geneve's protocol type, or the inner Ethernet type when it is 0x6558
            self.geneve_used = True
            return eq(("ind", isa.H, 0, link.vars["lt"]), proto)
        if link.encap == "mpls":
            nibble = {0x0800: 0x40, 0x86DD: 0x60}.get(proto)
            if nibble is None:
                return FALSE
            # bottom of stack bit of the last label, then the IP version nibble
            return b_and(masked_eq(ld(isa.B, self.nl - 2), 1, 1),
                         masked_eq(ld(isa.B, self.nl), 0xF0, nibble))
        if link.encap == "ppp":
            ppp = {0x0800: 0x21, 0x86DD: 0x57}.get(proto)
            if ppp is None:
                return FALSE
            return eq(ld(isa.H, link.off_linktype), ppp)
        if link.name == "RAW":
            nibble = {0x0800: 0x40, 0x86DD: 0x60}.get(proto)
            if nibble is None:
                return FALSE
            return eq(("alu", "and", ld(isa.B, 0), ("k", 0xF0)), nibble)
        if link.name == "NULL":
            if proto == 0x0800:
                return eq(ld(isa.W, 0), _bswap32(socket.AF_INET))
            if proto == 0x86DD:
                return b_or(*(eq(ld(isa.W, 0), _bswap32(af)) for af in NULL_AF_IP6))
            return FALSE
        return eq(ld(isa.H, link.off_linktype), proto)

    def ip(self):
        return self.linktype(0x0800)

    # --- loads relative to the current layers (constant offsets, or geneve's inner ones) ---
    def nload(self, size: int, off: int):
        """A load ``off`` bytes into the network header."""
        if self.link.vars is not None:
            self.geneve_used = True
            return ("ind", size, off, self.link.vars["nl"])
        return ld(size, self.nl + off)

    def ip_payload(self):
        """(constant, X value) locating the IPv4 payload: ``nl + 4*(ip[0]&0xf)``."""
        if self.link.vars is not None:
            self.geneve_used = True
            nl = self.link.vars["nl"]
            hl = ("alu", "lsh", ("alu", "and", ("ind", isa.B, 0, nl), ("k", 0xF)), ("k", 2))
            return 0, ("alu", "add", hl, nl)
        return self.nl, ("msh", self.nl)

    def tload(self, size: int, off: int):
        """A load ``off`` bytes into an IPv4 packet's payload."""
        base, xv = self.ip_payload()
        return ("ind", size, base + off, xv)

    def lload(self, size: int, off: int):
        """A load ``off`` bytes into the link-layer (Ethernet) header."""
        if self.link.vars is not None:
            self.geneve_used = True
            return ("ind", size, off, self.link.vars["ll"])
        return ld(size, off)

    def inner_ether(self):
        """After ``geneve``, link-layer tests need an Ethernet payload (protocol 0x6558):
        libpcap checks that the link header and the network header differ."""
        if self.link.vars is None:
            return TRUE
        self.geneve_used = True
        return b_not(("atom", ("testx", "jeq", self.link.vars["ll"], self.link.vars["nl"])))

    def ip6(self):
        return self.linktype(0x86DD)

    # --- protocols ---------------------------------------------------------------------
    def ip_proto(self, p: int):
        return b_and(self.ip(), eq(self.nload(isa.B, 9), p))

    def ip6_proto(self, p: int):
        nh = self.nload(isa.B, 6)
        return b_and(self.ip6(), b_or(eq(nh, p), b_and(eq(nh, 44), eq(self.nload(isa.B, 40), p))))

    def proto_abbrev(self, name: str, pos: int):
        if name in ("ip", "ip6", "arp", "rarp"):
            return self.linktype(ETHERTYPE[name])
        if name in ("tcp", "udp", "sctp", "pim"):
            return b_or(self.ip_proto(IPPROTO[name]), self.ip6_proto(IPPROTO[name]))
        if name in ("icmp", "igmp", "igrp", "vrrp", "carp"):
            return self.ip_proto(IPPROTO[name])
        if name in ("ah", "esp"):
            return b_or(self.ip_proto(IPPROTO[name]), self.ip6_proto(IPPROTO[name]))
        if name == "icmp6":
            return self.ip6_proto(58)
        if name in LINK_PROTOCOLS:
            p = LINK_PROTOCOLS[name]
            return self.ether_llc(p, pos) if p <= 1500 or p in LLC_SNAP else self.linktype(p)
        raise self.error(f"'{name}' on its own is not a filter", pos)

    def not_fragment(self):
        return b_not(test("jset", self.nload(isa.H, 6), 0x1FFF))

    # --- primitives ------------------------------------------------------------------------
    def gen(self, node: Node):
        if isinstance(node, And):
            return ("and", self.gen(node.left), self.gen(node.right))
        if isinstance(node, Or):
            return ("or", self.gen(node.left), self.gen(node.right))
        if isinstance(node, Not):
            return ("not", self.gen(node.expr))
        if isinstance(node, Relation):
            self.pos = node.pos
            return self.relation(node)
        assert isinstance(node, Primitive)
        self.pos = node.pos
        handler = getattr(self, f"prim_{node.kind}")
        return handler(node)

    def prim_proto(self, node: Primitive):
        return self.proto_abbrev(node.quals.proto, node.pos)

    def prim_less(self, node: Primitive):
        return b_not(test("jgt", ("len",), node.token.value))

    def prim_greater(self, node: Primitive):
        return test("jge", ("len",), node.token.value)

    def prim_broadcast(self, node: Primitive):
        proto = node.quals.proto or "ether"
        if proto in ("ether", "link"):
            return self.mac_cmp(0, b"\xff" * 6)
        if proto == "ip":
            dst = self.nload(isa.W, 16)
            mask = self.netmask
            return b_and(self.ip(), b_or(masked_eq(dst, ~mask, 0), masked_eq(dst, ~mask, ~mask)))
        raise self.error(f"'{proto} broadcast' is not supported")

    def prim_multicast(self, node: Primitive):
        proto = node.quals.proto or "ether"
        if proto in ("ether", "link"):
            self.require_ether()
            return b_and(self.inner_ether(), test("jset", self.lload(isa.B, 0), 1))
        if proto == "ip":
            return b_and(self.ip(), test("jge", self.nload(isa.B, 16), 224))
        if proto == "ip6":
            return b_and(self.ip6(), eq(self.nload(isa.B, 24), 0xFF))
        raise self.error(f"'{proto} multicast' is not supported")

    def prim_llc(self, node: Primitive):
        """802.2 LLC frames: a length in the type field and not Novell's raw 802.3 (0xffff),
        and for ``llc KIND`` the control byte's frame kind (libpcap's gen_llc)."""
        link = self.link
        if link.name != "EN10MB" or link.encap != "link" or link.vars is not None:
            raise self.error("'llc' is supported on Ethernet only (not after mpls, pppoes "
                             "or geneve)")
        from .parser import LLC_KINDS
        tfield = ld(isa.H, link.off_linktype)
        llc = link.off_linktype + 2
        cond = b_and(b_not(test("jgt", tfield, 1500)), b_not(eq(ld(isa.H, llc), 0xFFFF)))
        if node.token is not None:
            mask, value = LLC_KINDS[node.token.text]
            cond = b_and(cond, masked_eq(ld(isa.B, llc + 2), mask, value))
        return cond

    def prim_ifindex(self, node: Primitive):
        """The interface index: LINUX_SLL2's header field, or SKF_AD_IFINDEX in a live Linux
        capture; other savefile link types do not record it (libpcap refuses too)."""
        if self.link.name == "LINUX_SLL2":
            return eq(ld(isa.W, 4), node.token.value)
        if self.linux_ext:
            return eq(("anc", isa.SKF_AD["ifindex"]), node.token.value)
        raise self.error("'ifindex' is supported on LINUX_SLL2 and in live capture only")

    def prim_inbound(self, node):
        return self.direction(node, 4)

    def prim_outbound(self, node):
        return self.direction(node, 4, outbound=True)

    def direction(self, node, _unused, outbound=False):
        if self.link.vars is not None:
            raise self.error(f"'{'outbound' if outbound else 'inbound'}' after 'geneve' is "
                             "not supported (the inner packet is Ethernet)")
        if self.link.name == "LINUX_SLL":
            t = eq(ld(isa.H, 0), 4)
        elif self.link.name == "LINUX_SLL2":
            t = eq(ld(isa.B, 10), 4)
        elif self.linux_ext:
            t = eq(("anc", isa.SKF_AD["pkttype"]), 4)
        else:
            raise self.error(f"'{'outbound' if outbound else 'inbound'}' is not supported on "
                             f"this link type")
        return t if outbound else b_not(t)

    def prim_vlan(self, node: Primitive):
        self.not_after_geneve("vlan")
        link = self.link
        if link.name != "EN10MB" or link.encap != "link":
            raise self.error("'vlan' is supported on Ethernet only")
        vid = node.token.value if node.token is not None else None
        if vid is not None and vid > 4095:
            raise self.error(f"VLAN tag {vid} greater than maximum 4095", node.token.pos)
        tpid = ld(isa.H, link.off_linktype)
        tagged = b_or(eq(tpid, 0x8100), eq(tpid, 0x88A8), eq(tpid, 0x9100))
        world = self.extra.get("vlan_world")
        if world == "meta" and not self.extra.get("outer_vlan_seen"):
            # Linux live capture, outer tag moved into skb metadata by the driver: the tag
            # is in SKF_AD_VLAN_TAG and the frame keeps its untagged offsets
            self.extra["outer_vlan_seen"] = True
            cond = TRUE if vid is None else eq(("alu", "and", ("anc", isa.SKF_AD["vlan_tag"]),
                                                 ("k", 0xFFF)), vid)
            return cond
        self.extra["outer_vlan_seen"] = True
        cond = tagged if vid is None else b_and(
            tagged, eq(("alu", "and", ld(isa.H, link.off_linktype + 2), ("k", 0xFFF)), vid))
        link.off_linktype += 4
        link.off_nl += 4
        return cond

    def prim_mpls(self, node: Primitive):
        self.not_after_geneve("mpls")
        link = self.link
        label = node.token.value if node.token is not None else None
        if label is not None and label > 0xFFFFF:
            raise self.error(f"MPLS label {label} greater than maximum 1048575", node.token.pos)
        if link.encap == "mpls":
            cond = masked_eq(ld(isa.B, self.nl - 2), 1, 0)
        elif link.name in ("EN10MB", "LINUX_SLL", "LINUX_SLL2") and link.encap == "link":
            cond = eq(ld(isa.H, link.off_linktype), 0x8847)
        else:
            raise self.error("'mpls' is not supported on this link type")
        if label is not None:
            cond = b_and(cond, eq(("alu", "and", self.nload(isa.W, 0), ("k", 0xFFFFF000)),
                                  label << 12))
        link.encap = "mpls"
        link.off_nl += 4
        return cond

    def prim_pppoed(self, node):
        self.not_after_geneve("pppoed")
        if self.link.encap != "link":
            raise self.error("'pppoed' after mpls or pppoes is not supported")
        return self.linktype(0x8863)

    def prim_pppoes(self, node: Primitive):
        self.not_after_geneve("pppoes")
        link = self.link
        if link.encap != "link":
            raise self.error("'pppoes' after mpls or pppoes is not supported")
        cond = self.linktype(0x8864)     # no type field on RAW and NULL: never
        if cond == FALSE:
            return FALSE
        if node.token is not None:
            sid = node.token.value
            if sid > 0xFFFF:
                raise self.error(f"PPPoE session number {sid} greater than maximum 65535",
                                 node.token.pos)
            cond = b_and(cond, eq(("alu", "and", self.nload(isa.W, 0), ("k", 0xFFFF)), sid))
        link.encap = "ppp"
        link.off_linktype = self.nl + 6
        link.off_nl += 8
        return cond

    def prim_geneve(self, node: Primitive):
        """UDP port 6081 with a Geneve version 0 header (and the VNI when given). Later
        primitives apply to the encapsulated packet, as in libpcap: its offsets depend on the
        outer IP header length and on the Geneve options length, so they are computed once
        into scratch words (``set`` atoms) and later loads index from them. When the packet
        type is 0x6558 (Ethernet bridging) the inner packet has an Ethernet header; else the
        Geneve protocol type field itself is the inner packet's ethertype. The stores are
        dropped again when no later primitive uses them (see :func:`_resolve_geneve`)."""
        if self.link.vars is not None or self.geneve_seen:
            raise self.error("'geneve' after 'geneve' is not supported")
        self.geneve_seen = True
        vni = node.token.value if node.token is not None else None
        if vni is not None and vni > 0xFFFFFF:
            raise self.error(f"Geneve VNI {vni} greater than maximum 16777215", node.token.pos)
        hl = ("msh", self.nl)

        def at4(size, off):
            return ("ind", size, self.nl + off, hl)

        g = ("mem", "geneve.g")
        ll, lt, nl = ("mem", "geneve.ll"), ("mem", "geneve.lt"), ("mem", "geneve.nl")

        def v4():
            conds = [self.ip(), eq(self.nload(isa.B, 9), 17), self.not_fragment(),
                     eq(at4(isa.H, 2), 6081), masked_eq(at4(isa.B, 8), 0xC0, 0)]
            if vni is not None:
                conds.append(eq(("alu", "and", at4(isa.W, 12), ("k", 0xFFFFFF00)), vni << 8))
            return b_and(*conds), _set("geneve.g", ("alu", "add", hl, ("k", self.nl + 8)))

        def v6():
            u = self.nl + 40
            conds = [self.ip6(), eq(self.nload(isa.B, 6), 17), eq(ld(isa.H, u + 2), 6081),
                     masked_eq(ld(isa.B, u + 8), 0xC0, 0)]
            if vni is not None:
                conds.append(eq(("alu", "and", ld(isa.W, u + 12), ("k", 0xFFFFFF00)), vni << 8))
            return b_and(*conds), _set("geneve.g", ("k", u + 8))

        (c4, s4), (c6, s6) = v4(), v6()
        opts = ("alu", "lsh", ("alu", "and", ("ind", isa.B, 0, g), ("k", 0x3F)), ("k", 2))
        tail = b_and(
            _set("geneve.ll", ("alu", "add", ("alu", "add", opts, g), ("k", 8))),
            b_or(b_and(eq(("ind", isa.H, 2, g), 0x6558),
                       _set("geneve.lt", ("alu", "add", ll, ("k", 12))),
                       _set("geneve.nl", ("alu", "add", lt, ("k", 2)))),
                 b_and(_set("geneve.lt", ("alu", "add", g, ("k", 2))),
                       _set("geneve.nl", ll))))
        with_inner = b_and(b_or(b_and(c4, s4), b_and(c6, s6)), tail)
        self.link.vars = {"ll": ll, "lt": lt, "nl": nl}
        # libpcap computes the inner offsets even when nothing uses them, loading the Geneve
        # protocol type: a packet cut before it is rejected, so it is loaded here too
        plain = b_or(b_and(c4, test("jge", at4(isa.H, 10), 0)),
                     b_and(c6, test("jge", ld(isa.H, self.nl + 50), 0)))
        return ("geneve", with_inner, plain)

    def not_after_geneve(self, what: str):
        if self.link.vars is not None:
            raise self.error(f"'{what}' after 'geneve' is not supported")

    def require_ether(self):
        if self.link.name != "EN10MB" and self.link.vars is None:
            raise self.error("Ethernet addresses are only supported on EN10MB")

    def mac_cmp(self, off: int, mac: bytes):
        self.require_ether()
        low = int.from_bytes(mac[2:], "big")
        high = int.from_bytes(mac[:2], "big")
        return b_and(self.inner_ether(), eq(self.lload(isa.W, off + 2), low),
                     eq(self.lload(isa.H, off), high))

    # --- qualified ids -------------------------------------------------------------------
    def prim_id(self, node: Primitive):
        q = node.quals
        tok = node.token
        kind = q.type
        if kind is None:
            kind = "host"
        if q.proto in LINK_PROTOCOLS:
            raise self.error(f"'{q.proto}' takes no address, port or protocol in pybpf "
                             f"(DECnet addresses and ISO/LLC sub-protocols are not supported)",
                             node.pos)
        if kind in ("proto", "protochain"):
            return self.gen_proto_qual(node)
        if kind in ("port", "portrange"):
            return self.gen_port(node)
        if kind == "gateway":
            raise self.error("'gateway' needs host name resolution, which pybpf does not do",
                             tok.pos)
        if tok.kind == "mac" or q.proto in ("ether", "link"):
            if tok.kind != "mac":
                raise self.error(f"'{tok.text}' is not an Ethernet address", tok.pos)
            if kind != "host":
                raise self.error("Ethernet addresses take only 'host'", tok.pos)
            return self.directions(q.dir, lambda d: self.mac_cmp(0 if d == "dst" else 6, tok.value))
        if tok.kind == "ip6" or (q.proto == "ip6"):
            return self.gen_host6(node, kind)
        return self.gen_host4(node, kind)

    def directions(self, dir_, fn):
        if dir_ in (None, "src or dst"):
            return b_or(fn("src"), fn("dst"))
        if dir_ == "src and dst":
            return b_and(fn("src"), fn("dst"))
        return fn(dir_)

    def gen_host4(self, node: Primitive, kind: str):
        tok, q = node.token, node.quals
        if tok.kind == "ip":
            parts = tok.value
        elif tok.kind == "num":
            parts = None
        elif tok.kind == "id":
            try:
                addr = ipaddress.IPv4Address(socket.gethostbyname(tok.text)) \
                    if tok.text == "localhost" else None
            except OSError:
                addr = None
            if addr is None:
                raise self.error(f"unknown host '{tok.text}' (pybpf does not resolve names)",
                                 tok.pos)
            parts = list(addr.packed)
        else:
            raise self.error(f"'{tok.text}' is not an IPv4 address", tok.pos)
        if kind == "host":
            if parts is None:
                addr, mask = tok.value, isa.U32
            else:
                if len(parts) != 4:
                    # libpcap reads a partial dotted host as a network-style number
                    addr = 0
                    for p in parts:
                        addr = (addr << 8) | p
                else:
                    addr = int.from_bytes(bytes(parts), "big")
                mask = isa.U32
            if node.extra is not None:
                raise self.error("a mask or prefix length needs 'net'", tok.pos)
        else:  # net
            if parts is None:
                value = tok.value
                nbytes = 1 if value < 0x100 else 2 if value < 0x10000 else 3 if value < 0x1000000 else 4
                parts = list(value.to_bytes(nbytes, "big"))
            addr = int.from_bytes(bytes(parts + [0] * (4 - len(parts))), "big")
            mask = (isa.U32 << (32 - 8 * len(parts))) & isa.U32
            if node.extra is not None:
                how, t = node.extra
                if how == "len":
                    if t.value > 32:
                        raise self.error(f"mask length must be <= 32", t.pos)
                    mask = (isa.U32 << (32 - t.value)) & isa.U32 if t.value else 0
                else:
                    if t.kind == "num":
                        mask = t.value
                    else:
                        if len(t.value) != 4:
                            raise self.error("bad netmask", t.pos)
                        mask = int.from_bytes(bytes(t.value), "big")
            if addr & ~mask & isa.U32:
                raise self.error("non-network bits set in "
                                 f"\"{tok.text}{'' if node.extra is None else ''}\"", tok.pos)
        proto = q.proto
        if proto in (None, "ip", "arp", "rarp"):
            def for_proto(name, src_off, dst_off):
                return b_and(self.linktype(ETHERTYPE[name]), self.directions(
                    q.dir, lambda d: masked_eq(self.nload(isa.W, (src_off if d == "src" else dst_off)),
                                               mask, addr)))
            parts_ = []
            if proto in (None, "ip"):
                parts_.append(for_proto("ip", 12, 16))
            if proto in (None, "arp"):
                parts_.append(for_proto("arp", 14, 24))
            if proto in (None, "rarp"):
                parts_.append(for_proto("rarp", 14, 24))
            if self.link.name in ("RAW", "NULL") or self.link.encap != "link":
                # no ARP on these links: libpcap drops the impossible branches
                parts_ = [p for p in parts_[:1]] if proto in (None, "ip") else parts_
            return b_or(*parts_)
        raise self.error(f"'{proto} {kind}' does not take an IPv4 address", tok.pos)

    def gen_host6(self, node: Primitive, kind: str):
        tok, q = node.token, node.quals
        if tok.kind != "ip6":
            raise self.error(f"'{tok.text}' is not an IPv6 address", tok.pos)
        if q.proto not in (None, "ip6"):
            raise self.error(f"'{q.proto} {kind}' does not take an IPv6 address", tok.pos)
        addr = int(tok.value)
        plen = 128
        if kind == "net" and node.extra is not None:
            how, t = node.extra
            if how != "len" or t.value > 128:
                raise self.error("bad IPv6 prefix length", t.pos)
            plen = t.value
        elif node.extra is not None:
            raise self.error("a prefix length needs 'net'", tok.pos)
        mask = ((1 << 128) - 1) ^ ((1 << (128 - plen)) - 1)
        if addr & ~mask:
            raise self.error("non-network bits set in IPv6 address", tok.pos)

        def cmp(base):
            tests = []
            for i in range(4):
                m = (mask >> (96 - 32 * i)) & isa.U32
                if m == 0:
                    continue
                a = (addr >> (96 - 32 * i)) & isa.U32
                tests.append(masked_eq(self.nload(isa.W, base + 4 * i), m, a))
            return b_and(*tests)

        # libpcap compares the last word first
        def cmp_rev(base):
            tests = []
            for i in reversed(range(4)):
                m = (mask >> (96 - 32 * i)) & isa.U32
                if m == 0:
                    continue
                a = (addr >> (96 - 32 * i)) & isa.U32
                tests.append(masked_eq(self.nload(isa.W, base + 4 * i), m, a))
            return b_and(*tests)

        return b_and(self.ip6(), self.directions(q.dir, lambda d: cmp(8 if d == "src" else 24)))

    def gen_proto_qual(self, node: Primitive):
        tok, q = node.token, node.quals
        if tok.kind == "num":
            p = tok.value
        elif tok.kind == "id":
            table = ETHERTYPE_NAMES if q.proto in LINK_LAYER_QUALS else IPPROTO
            if tok.text not in table:
                raise self.error(f"unknown protocol '{tok.text}'", tok.pos)
            p = table[tok.text]
        else:
            raise self.error(f"'{tok.text}' is not a protocol number or name", tok.pos)
        if q.proto in LINK_LAYER_QUALS:
            if p > 0xFFFF:
                raise self.error(f"ethernet protocol {p} greater than maximum 65535", tok.pos)
            if p <= 1500 or p in LLC_SNAP:
                return self.ether_llc(p, tok.pos)
            return self.linktype(p)
        if p > 255:
            raise self.error(f"IP protocol {p} greater than maximum 255", tok.pos)
        if q.type == "protochain":
            if q.proto not in (None, "ip", "ip6"):
                raise self.error(f"'{q.proto} protochain' is not supported", node.pos)
            if self.link.vars is not None:
                raise self.error("'protochain' after 'geneve' is not supported", node.pos)
            chains = []
            if q.proto in (None, "ip"):
                chains.append(b_and(self.ip(), self.protochain(p, v6=False)))
            if q.proto in (None, "ip6"):
                chains.append(b_and(self.ip6(), self.protochain(p, v6=True)))
            self.chains += 1
            return b_or(*chains)
        if q.proto == "ip":
            return self.ip_proto(p)
        if q.proto == "ip6":
            return self.ip6_proto(p)
        if q.proto is None:
            return b_or(self.ip_proto(p), self.ip6_proto(p))
        raise self.error(f"'{q.proto} proto' is not supported", node.pos)

    def protochain(self, p: int, v6: bool):
        """Follow the header chain to protocol ``p`` (libpcap's gen_protochain). libpcap emits
        a loop with a backward jump, which neither the kernel's checker nor pybpf's accepts;
        this walk is unrolled for PROTOCHAIN_DEPTH headers (a longer chain is rejected), and
        the offset of each header is kept in a scratch word so that the IPv6 extension-header
        and AH branches join again. Offsets follow libpcap exactly, including that after an
        AH header the next offset is ``(len+2)*4`` from the network header, not added to the
        previous one."""
        nl = self.nl
        a = self.nload(isa.B, 6 if v6 else 9)
        x = ("k", 40) if v6 else ("msh", nl)
        ext = IP6_EXTENSION_HEADERS if v6 else ()
        steps = []
        for depth in range(PROTOCHAIN_DEPTH + 1):
            found = eq(a, p)
            if depth == PROTOCHAIN_DEPTH:
                steps.append((found, None))
                break
            name = f"protochain{self.chains}.{depth}"
            length = ("ind", isa.B, nl + 1, x)
            step_ext = _set(name, ("alu", "add", ("alu", "lsh", ("alu", "add", length, ("k", 1)),
                                                   ("k", 3)), x))
            step_ah = _set(name, ("alu", "mul", ("alu", "add", length, ("k", 2)), ("k", 4)))
            more = b_and(b_not(eq(a, 59)), b_or(
                b_and(b_or(*(eq(a, e) for e in ext)), step_ext) if ext else FALSE,
                b_and(eq(a, 51), step_ah)))
            steps.append((found, more))
            a = ("ind", isa.B, nl, x)      # the next-header byte of the header at x
            x = ("mem", name)
        out = steps[-1][0]
        for found, more in reversed(steps[:-1]):
            out = b_or(found, b_and(more, out))
        return out

    def ether_llc(self, p: int, pos: int):
        """``ether proto P`` where 802.3 framing matters, as libpcap's gen_linktype does:
        a value <= 1500 is an 802.2 LLC SAP (a frame whose type field is a length, then the
        DSAP, or DSAP and SSAP for ISO/IP/NetBEUI); IPX also matches Novell's raw 802.3 and
        SNAP; AppleTalk and AARP also match their SNAP encapsulation."""
        link = self.link
        if link.vars is not None or link.encap != "link" or link.name in ("RAW", "NULL"):
            if p <= 1500 and link.name in ("RAW", "NULL"):
                return FALSE
            if p > 1500:
                return self.linktype(p)
            raise self.error("802.3 protocols (ether proto <= 1500) are not supported after "
                             "mpls, pppoes or geneve", pos)
        if link.name == "LINUX_SLL2":
            return self.linktype(p)          # libpcap compares the protocol field as is
        tfield = ld(isa.H, link.off_linktype)
        llc = link.off_linktype + 2
        if link.name == "LINUX_SLL":
            is_8023 = eq(tfield, 4)          # LINUX_SLL_P_802_2
        else:
            is_8023 = b_not(test("jgt", tfield, 1500))

        def snap(oui: int, etype: int):
            return b_and(eq(ld(isa.W, llc + 4), ((oui & 0xFFFF) << 16) | etype),
                         eq(ld(isa.W, llc), 0xAAAA0300 | (oui >> 16)))

        if p in LLC_SNAP:
            return b_or(eq(tfield, p), b_and(is_8023, snap(*LLC_SNAP[p])))
        if p == 0xE0:                        # IPX
            dsap = eq(ld(isa.B, llc), 0xE0)
            if link.name == "LINUX_SLL":     # LINUX_SLL_P_802_3 is Novell's raw 802.3
                return b_or(eq(tfield, 0x8137), eq(tfield, 1),
                            b_and(is_8023, b_or(dsap, snap(0, 0x8137))))
            return b_or(eq(tfield, 0x8137), b_and(is_8023, b_or(
                snap(0, 0x8137), dsap, eq(ld(isa.H, llc), 0xFFFF))))
        if p in (0xFE, 0x06, 0xF0):          # ISO, IP, NetBEUI: DSAP and SSAP
            return b_and(is_8023, eq(ld(isa.H, llc), p * 0x101))
        return b_and(is_8023, eq(ld(isa.B, llc), p))

    def gen_port(self, node: Primitive):
        tok, q = node.token, node.quals
        if q.type == "portrange" and node.extra is not None:
            a, b = self.port(tok), self.port(node.extra[1])
            lo, hi = min(a, b), max(a, b)
        elif q.type == "portrange":
            lo, hi = self.port_range(tok)
        else:
            lo, only = self.port_and_proto(tok)
            hi = lo
            if only is not None and q.proto is None:
                q = Quals(only, q.dir, q.type)
            elif only is not None and q.proto in ("tcp", "udp") and only != q.proto:
                raise self.error(f"port '{tok.text}' is not a {q.proto} service", tok.pos)
        if q.proto in ("tcp", "udp", "sctp"):
            protos = [IPPROTO[q.proto]]
            v = "both"
        elif q.proto in (None,):
            protos = [132, 6, 17]
            v = "both"
        elif q.proto in ("ip", "ip6"):
            protos = [132, 6, 17]
            v = q.proto
        else:
            raise self.error(f"'{q.proto} port' is not supported", node.pos)

        def port_cmp(value):
            if lo == hi:
                return eq(value, lo)
            return b_and(test("jge", value, lo), b_not(test("jgt", value, hi)))

        def v4():
            return b_and(self.ip(), b_or(*(eq(self.nload(isa.B, 9), p) for p in protos)),
                         self.not_fragment(),
                         self.directions(q.dir, lambda d: port_cmp(
                             self.tload(isa.H, 0 if d == "src" else 2))))

        def v6():
            return b_and(self.ip6(), b_or(*(eq(self.nload(isa.B, 6), p) for p in protos)),
                         self.directions(q.dir, lambda d: port_cmp(
                             self.nload(isa.H, 40 + (0 if d == "src" else 2)))))

        if v == "ip":
            return v4()
        if v == "ip6":
            return v6()
        return b_or(v6(), v4())

    def port(self, tok):
        return self.port_and_proto(tok)[0]

    def port_and_proto(self, tok) -> tuple[int, str | None]:
        """A port number, and 'tcp'/'udp' when a service name is known for only one of
        them (libpcap then restricts the primitive to that protocol)."""
        if tok.kind == "num":
            value, proto = tok.value, None
        elif tok.kind == "id":
            found = {}
            for p in ("tcp", "udp"):
                try:
                    found[p] = socket.getservbyname(tok.text, p)
                except OSError:
                    pass
            if not found and tok.text in SERVICES:
                found = {"tcp": SERVICES[tok.text], "udp": SERVICES[tok.text]}
            if not found:
                raise self.error(f"unknown port '{tok.text}'", tok.pos)
            if len(found) == 2 and found["tcp"] != found["udp"]:
                raise self.error(f"port '{tok.text}' is tcp/{found['tcp']} but "
                                 f"udp/{found['udp']}", tok.pos)
            value = next(iter(found.values()))
            proto = next(iter(found)) if len(found) == 1 else None
        else:
            raise self.error(f"'{tok.text}' is not a port", tok.pos)
        if value > 65535:
            raise self.error(f"illegal port number {value} > 65535", tok.pos)
        return value, proto

    def port_range(self, tok):
        text = tok.text
        if tok.kind == "id" and "-" in text:
            a, _, b = text.partition("-")
            from .lexer import Token
            lo = self.port(Token("num" if a.isdigit() else "id", a, tok.pos, int(a) if a.isdigit() else a))
            hi = self.port(Token("num" if b.isdigit() else "id", b, tok.pos, int(b) if b.isdigit() else b))
        else:
            lo = hi = self.port(tok)
        return (min(lo, hi), max(lo, hi))

    # --- arithmetic ----------------------------------------------------------------------
    def relation(self, node: Relation):
        guards = []
        left = self.arith(node.left, guards)
        right = self.arith(node.right, guards)
        op = node.op
        if left[0] == "k" and right[0] != "k":
            left, right = right, left
            op = {">": "<", "<": ">", ">=": "<=", "<=": ">=", "=": "=", "!=": "!="}[op]
        jop, negate = {">": ("jgt", False), ">=": ("jge", False), "=": ("jeq", False),
                       "!=": ("jeq", True), "<": ("jge", True), "<=": ("jgt", True)}[op]
        if right[0] == "k":
            k = right[1]
            if left[0] == "k":
                res = _JUDGE[jop](left[1], k)
                cond = TRUE if res != negate else FALSE
                return b_and(*guards, cond) if guards else cond
            if jop == "jeq" and k == 0 and left[0] == "alu" and left[1] == "and" \
                    and left[3][0] == "k":
                cond = test("jset", left[2], left[3][1])
                negate = not negate
            elif jop == "jeq" and left[0] == "alu" and left[1] == "and" and left[3][0] == "k" \
                    and k == left[3][1] and k and k & (k - 1) == 0:
                cond = test("jset", left[2], k)
            else:
                cond = test(jop, left, k)
        else:
            cond = ("atom", ("testx", jop, left, right))
        if negate:
            cond = b_not(cond)
        return b_and(*guards, cond)

    def arith(self, node: Arith, guards: list):
        if isinstance(node, Num):
            return ("k", node.value & isa.U32)
        if isinstance(node, Length):
            return ("len",)
        if isinstance(node, Negate):
            v = self.arith(node.expr, guards)
            if v[0] == "k":
                return ("k", -v[1] & isa.U32)
            return ("neg", v)
        if isinstance(node, BinOp):
            a = self.arith(node.left, guards)
            # libpcap's gen_arth keeps only the left operand's protocol test: in
            # ``ip[0] + tcp[0] = 5`` no TCP test is made (tcpdump -d shows it); followed so
            # that the same packets are accepted
            b = self.arith(node.right, [])
            op = _BINOPS[node.op]
            if b[0] == "k" and b[1] == 0 and op in ("div", "mod"):
                raise self.error("division by zero", node.pos)
            if a[0] == "k" and b[0] == "k":
                return ("k", _FOLD[op](a[1], b[1]) & isa.U32)
            if b[0] == "k" and op in ("lsh", "rsh") and b[1] > 31:
                raise self.error(f"shift by {b[1]} (must be below 32)", node.pos)
            return ("alu", op, a, b)
        if isinstance(node, PacketLoad):
            self.pos = node.pos
            return self.packet_load(node, guards)
        raise self.error("bad arithmetic")

    def packet_load(self, node: PacketLoad, guards: list):
        proto = node.proto
        size = {1: isa.B, 2: isa.H, 4: isa.W}[node.size]
        off = self.arith(node.offset, guards)
        inner = self.link.vars
        if proto in ("ah", "esp"):
            raise self.error(f"'{proto}[...]' is not supported (libpcap refuses it too: "
                             "unsupported index operation)", node.pos)
        if proto in LINK_LAYER_QUALS:
            guard, base, xbase = None, 0, None
            if inner is not None:        # libpcap makes no Ethernet test here
                xbase = self.lload(isa.B, 0)[3]
        elif proto in ("ip", "arp", "rarp", "ip6"):
            guard, base, xbase = self.linktype(ETHERTYPE[proto]), self.nl, None
            if inner is not None:
                base, xbase = 0, self.nload(isa.B, 0)[3]
        elif proto in ("tcp", "udp", "sctp", "icmp", "igmp", "igrp", "pim", "vrrp", "carp"):
            self.pos = node.pos
            guard = b_and(self.ip(), self.proto_abbrev(proto, node.pos), self.not_fragment())
            base, xbase = self.ip_payload()
        elif proto == "icmp6":
            guard = self.ip6_proto_simple(58)
            base, xbase = self.nl + 40, None
            if inner is not None:
                base, xbase = 40, self.nload(isa.B, 0)[3]
        else:
            raise self.error(f"'{proto}[...]' is not supported", node.pos)
        if guard is not None:
            guards.append(guard)
        if xbase is None:
            if off[0] == "k":
                return ("abs", size, base + off[1])
            return ("ind", size, base, off)
        if off[0] == "k":
            return ("ind", size, base + off[1], xbase)
        return ("ind", size, base, ("alu", "add", off, xbase))

    def ip6_proto_simple(self, p):
        return b_and(self.ip6(), eq(self.nload(isa.B, 6), p))


_BINOPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod", "&": "and", "|": "or",
           "^": "xor", "<<": "lsh", ">>": "rsh"}
_FOLD = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
         "div": lambda a, b: a // b, "mod": lambda a, b: a % b, "and": lambda a, b: a & b,
         "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b,
         "lsh": lambda a, b: a << b if b < 32 else 0, "rsh": lambda a, b: a >> b if b < 32 else 0}
_JUDGE = {"jeq": lambda a, b: a == b, "jgt": lambda a, b: a > b, "jge": lambda a, b: a >= b,
          "jset": lambda a, b: bool(a & b)}


def _set(name: str, value):
    """Store ``value`` into the scratch word of ``("mem", name)`` (always true)."""
    return ("atom", ("set", name, value))


def _resolve_geneve(f, used: bool):
    """Choose, for the ``geneve`` marker, the form that computes the inner offsets (when a
    later primitive uses them) or the plain test."""
    kind = f[0]
    if kind == "geneve":
        return f[1] if used else f[2]
    if kind in ("and", "or"):
        return (kind, _resolve_geneve(f[1], used), _resolve_geneve(f[2], used))
    if kind == "not":
        return ("not", _resolve_geneve(f[1], used))
    return f


def _bswap32(v: int) -> int:
    return int.from_bytes(v.to_bytes(4, "little"), "big")


def formula(expression: str, linktype: str | int = "EN10MB", *, linux_ext: bool = False,
            netmask: int = 0):
    """The boolean formula of atoms for ``expression`` (None = accept every packet)."""
    name = linktype_name(linktype)
    tree = parse(expression)
    if tree is None:
        return TRUE
    gen = CodeGen(expression, _initial_state(name), linux_ext=linux_ext, netmask=netmask)
    if linux_ext and name == "EN10MB" and _mentions_vlan(tree):
        # Linux live capture (libpcap's BPF_SPECIAL_VLAN_HANDLING): the outer VLAN tag may
        # sit in skb metadata (SKF_AD_VLAN_TAG_PRESENT) or in the frame; compile the
        # expression for both worlds and choose by the metadata bit
        worlds = []
        for world in ("meta", "band"):
            g = CodeGen(expression, _initial_state(name), linux_ext=True, netmask=netmask)
            g.extra["vlan_world"] = world
            w = g.gen(tree)
            worlds.append(_resolve_geneve(w, g.geneve_used) if g.geneve_seen else w)
        present = eq(("anc", isa.SKF_AD["vlan_tag_present"]), 1)
        return b_or(b_and(present, worlds[0]), b_and(b_not(present), worlds[1]))
    f = gen.gen(tree)
    if gen.geneve_seen:
        f = _resolve_geneve(f, gen.geneve_used)
    return f


def _mentions_vlan(node) -> bool:
    if isinstance(node, Primitive):
        return node.kind == "vlan"
    if isinstance(node, (And, Or)):
        return _mentions_vlan(node.left) or _mentions_vlan(node.right)
    if isinstance(node, Not):
        return _mentions_vlan(node.expr)
    return False


def compile_expression(expression: str, linktype: str | int = "EN10MB", *, snaplen: int = 262144,
                       optimize: bool = True, linux_ext: bool = False,
                       netmask: int = 0) -> list[isa.Instruction]:
    """Compile ``expression`` to classic BPF, returning ``snaplen`` for accepted packets."""
    from .optimizer import build_program
    try:
        f = formula(expression, linktype, linux_ext=linux_ext, netmask=netmask)
        insns = build_program(f, snaplen, optimize=optimize)
    except RecursionError:
        raise FilterError("expression nested too deeply", expression, 0) from None
    if optimize and len(insns) == 1 and insns[0].k == 0 and expression.strip():
        raise FilterError("expression rejects all packets", expression, 0)
    return insns
