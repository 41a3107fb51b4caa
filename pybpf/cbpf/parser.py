"""pcap-filter(7) expressions -> a small syntax tree, after libpcap's grammar.y.

Precedence as libpcap: ``not`` binds tightest; ``and`` and ``or`` have *equal* precedence and
associate left to right. A bare address after ``and``/``or`` inherits the qualifiers of the
previous primitive (``host a and b`` is ``host a and host b``); after a protocol abbreviation
or a relation there is nothing to inherit and a bare address is an error, as in libpcap.
Arithmetic uses C precedence (``|`` < ``&`` < shifts < ``+ -`` < ``* / %`` < unary minus).
A ``(`` may open a boolean group or an arithmetic one; the parser tries the relation first and
backs up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import FilterError
from .lexer import Token, tokenize

PROTOCOLS = {"ether", "link", "ppp", "slip", "fddi", "tr", "wlan", "ip", "ip6", "arp", "rarp",
             "tcp", "udp", "icmp", "icmp6", "igmp", "igrp", "pim", "vrrp", "carp", "sctp", "ah",
             "esp", "decnet", "lat", "sca", "moprc", "mopdl", "atalk", "aarp", "iso", "stp",
             "ipx", "netbeui"}
#: link-layer protocol names usable alone (``decnet``, ``ipx``...): an ethertype or LLC SAP test
LINK_PROTOCOLS = {"decnet", "lat", "sca", "moprc", "mopdl", "atalk", "aarp", "iso", "stp", "ipx",
                  "netbeui"}
#: ISO protocols libpcap knows that pybpf does not compile (a clear error instead)
ISO_PROTOCOLS = {"clnp", "esis", "isis", "l1", "l2", "iih", "lsp", "snp", "csnp", "psnp"}
#: ``llc`` frame kinds: (mask of the control byte, value), after libpcap's gen_llc_*
LLC_KINDS = {"i": (0x01, 0x00), "s": (0x03, 0x01), "u": (0x03, 0x03),
             "rr": (0x0F, 0x01), "rnr": (0x0F, 0x05), "rej": (0x0F, 0x09),
             "ui": (0xEF, 0x03), "ua": (0xEF, 0x63), "disc": (0xEF, 0x43), "dm": (0xEF, 0x0F),
             "sabme": (0xEF, 0x6F), "test": (0xEF, 0xE3), "xid": (0xEF, 0xAF),
             "frmr": (0xEF, 0x87)}
DIRECTIONS = {"src", "dst"}
ADDR_TYPES = {"host", "net", "port", "portrange", "gateway", "proto", "protochain"}


@dataclass(frozen=True)
class Quals:
    proto: str | None = None
    dir: str | None = None       # src, dst, "src or dst", "src and dst"
    type: str | None = None      # host, net, port, portrange, proto, gateway


NO_QUALS = Quals()


# --- syntax tree ---------------------------------------------------------------------------
@dataclass
class Node:
    pos: int = field(default=0, kw_only=True)


@dataclass
class And(Node):
    left: Node
    right: Node


@dataclass
class Or(Node):
    left: Node
    right: Node


@dataclass
class Not(Node):
    expr: Node


@dataclass
class Primitive(Node):
    """A qualified id (``tcp dst port 80``), or a keyword primitive (kind names it)."""

    kind: str                 # 'id', 'proto' (pname alone), 'broadcast', 'multicast', 'less',
                              # 'greater', 'vlan', 'mpls', 'pppoes', 'pppoed', 'geneve',
                              # 'inbound', 'outbound'
    quals: Quals = NO_QUALS
    token: Token | None = None  # the address/name/number
    extra: object = None      # prefix length, netmask token, or a number for vlan/mpls...


@dataclass
class Relation(Node):
    op: str                   # '>', '>=', '=', '!=', '<', '<='
    left: "Arith"
    right: "Arith"


class Arith(Node):
    pass


@dataclass
class Num(Arith):
    value: int


@dataclass
class Length(Arith):
    pass


@dataclass
class PacketLoad(Arith):
    proto: str
    offset: Arith
    size: int


@dataclass
class BinOp(Arith):
    op: str
    left: Arith
    right: Arith


@dataclass
class Negate(Arith):
    expr: Arith


# named constants usable in arithmetic (pcap-filter(7))
NAMED_CONSTANTS = {
    "icmptype": 0, "icmpcode": 1, "icmp6type": 0, "icmp6code": 1, "tcpflags": 13,
    "icmp-echoreply": 0, "icmp-unreach": 3, "icmp-sourcequench": 4, "icmp-redirect": 5,
    "icmp-echo": 8, "icmp-routeradvert": 9, "icmp-routersolicit": 10, "icmp-timxceed": 11,
    "icmp-paramprob": 12, "icmp-tstamp": 13, "icmp-tstampreply": 14, "icmp-ireq": 15,
    "icmp-ireqreply": 16, "icmp-maskreq": 17, "icmp-maskreply": 18,
    "icmp6-destinationunreach": 1, "icmp6-packettoobig": 2, "icmp6-timeexceeded": 3,
    "icmp6-parameterproblem": 4, "icmp6-echo": 128, "icmp6-echoreply": 129,
    "icmp6-multicastlistenerquery": 130, "icmp6-multicastlistenerreportv1": 131,
    "icmp6-multicastlistenerdone": 132, "icmp6-routersolicit": 133,
    "icmp6-routeradvert": 134, "icmp6-neighborsolicit": 135, "icmp6-neighboradvert": 136,
    "icmp6-redirect": 137,
    "tcp-fin": 0x01, "tcp-syn": 0x02, "tcp-rst": 0x04, "tcp-push": 0x08, "tcp-ack": 0x10,
    "tcp-urg": 0x20, "tcp-ece": 0x40, "tcp-cwr": 0x80,
}

_RELOPS = {">", ">=", "=", "!=", "<", "<="}
_BINARY_LEVELS = [{"|"}, {"^"}, {"&"}, {"<<", ">>"}, {"+", "-"}, {"*", "/", "%"}]


class _Backtrack(Exception):
    pass


class Parser:
    def __init__(self, expr: str):
        self.expr = expr
        self.toks = tokenize(expr)
        self.i = 0

    # --- helpers -----------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, n: int = 1) -> Token:
        return self.toks[min(self.i + n, len(self.toks) - 1)]

    def at(self, *texts: str) -> bool:
        t = self.tok
        return t.kind in ("kw", "op") and t.text in texts

    def advance(self) -> Token:
        t = self.tok
        self.i += 1
        return t

    def error(self, message: str, tok: Token | None = None) -> FilterError:
        tok = tok or self.tok
        if tok.kind == "end" and "end" not in message:
            message += " (at the end of the expression)"
        return FilterError(message, self.expr, tok.pos)

    def expect(self, text: str) -> Token:
        if not self.at(text):
            what = f"'{self.tok.text}'" if self.tok.kind != "end" else "end of expression"
            raise self.error(f"syntax error: expected '{text}', found {what}")
        return self.advance()

    # --- boolean level -----------------------------------------------------------------
    def parse(self) -> Node | None:
        if self.tok.kind == "end":
            return None
        node, _ = self.parse_expr(None)
        if self.tok.kind != "end":
            raise self.error(f"syntax error: unexpected '{self.tok.text}'")
        return node

    def parse_expr(self, inherited: Quals | None) -> tuple[Node, Quals | None]:
        node, quals = self.parse_term(inherited)
        while self.at("and", "or"):
            op = self.advance()
            right, quals = self.parse_term(quals, after_op=True)
            cls = And if op.text == "and" else Or
            node = cls(node, right, pos=op.pos)
        return node, quals

    def _starts_id(self) -> bool:
        return self.tok.kind in ("num", "ip", "ip6", "mac", "id")

    def parse_term(self, inherited: Quals | None, after_op: bool = False) -> tuple[Node, Quals | None]:
        if self.at("not"):
            t = self.advance()
            node, quals = self.parse_term(inherited, after_op)
            return Not(node, pos=t.pos), quals
        if after_op and self._starts_id() and not self._starts_relation():
            if inherited is None:
                raise self.error(f"syntax error: '{self.tok.text}' needs a qualifier "
                                 "(host, net, port, ...)")
            return self.parse_id(inherited), inherited
        return self.parse_rterm(inherited)

    def _starts_relation(self) -> bool:
        save = self.i
        try:
            self.parse_arith()
            return self.at(*_RELOPS)
        except FilterError:
            return False
        finally:
            self.i = save

    def parse_rterm(self, inherited: Quals | None) -> tuple[Node, Quals | None]:
        # a relation between arithmetic expressions?
        save = self.i
        arith_error = None
        try:
            left = self.parse_arith()
            if self.at(*_RELOPS):
                op = self.advance()
                right = self.parse_arith()
                return Relation(op.text, left, right, pos=op.pos), None
            if self.i > save + 1 and not self.at(")", "and", "or") and self.tok.kind != "end":
                arith_error = self.error(f"syntax error: expected a relation "
                                         f"(>, <, >=, <=, =, !=), found '{self.tok.text}'")
        except FilterError as exc:
            arith_error = exc
        self.i = save
        try:
            result = self._parse_rterm(inherited)
        except FilterError as exc:
            if arith_error is not None and (arith_error.position or 0) > (exc.position or 0):
                raise arith_error from None
            raise
        if arith_error is not None and (arith_error.position or 0) > self.tok.pos:
            raise arith_error
        return result

    def _parse_rterm(self, inherited: Quals | None) -> tuple[Node, Quals | None]:
        tok = self.tok
        if self.at("("):
            self.advance()
            node, _ = self.parse_expr(inherited)
            self.expect(")")
            return node, inherited
        if tok.kind == "kw" and tok.text in ("less", "greater"):
            self.advance()
            num = self.tok
            if num.kind != "num":
                raise self.error(f"syntax error: '{tok.text}' needs a number")
            self.advance()
            return Primitive(tok.text, token=num, pos=tok.pos), None
        if tok.kind == "kw" and tok.text in ("vlan", "mpls", "pppoes", "geneve"):
            self.advance()
            num = None
            if self.tok.kind == "num":
                num = self.advance()
            return Primitive(tok.text, token=num, pos=tok.pos), None
        if tok.kind == "kw" and tok.text == "ifindex":
            self.advance()
            num = self.tok
            if num.kind != "num":
                raise self.error("syntax error: 'ifindex' needs an interface index")
            self.advance()
            return Primitive("ifindex", token=num, pos=tok.pos), None
        if tok.kind == "kw" and tok.text == "byte":
            return self.parse_byte(tok), None
        if tok.kind == "kw" and tok.text == "llc":
            self.advance()
            kind = None
            if self.tok.kind == "id" and self.tok.text in LLC_KINDS:
                kind = self.advance()
            return Primitive("llc", token=kind, pos=tok.pos), None
        if tok.kind == "kw" and tok.text in ISO_PROTOCOLS:
            raise self.error(f"'{tok.text}' (ISO protocols over 802.2 LLC) is not supported", tok)
        if tok.kind == "kw" and tok.text in ("pppoed", "inbound", "outbound", "broadcast",
                                              "multicast"):
            self.advance()
            return Primitive(tok.text, pos=tok.pos), None
        # head id, or a protocol name on its own
        proto = dir_ = type_ = None
        start = tok
        if tok.kind == "kw" and tok.text in PROTOCOLS:
            proto = self.advance().text
            if self.at("broadcast", "multicast"):
                t = self.advance()
                return Primitive(t.text, Quals(proto), pos=start.pos), None
        if self.at("src", "dst"):
            dir_ = self.advance().text
            if self.at("or", "and") and self.peek().kind == "kw" and self.peek().text in DIRECTIONS \
                    and self.peek().text != dir_:
                conj = self.advance().text
                self.advance()
                dir_ = f"src {conj} dst"
        if self.tok.kind == "kw" and self.tok.text in ADDR_TYPES:
            type_ = self.advance().text
        if proto is not None and dir_ is None and type_ is None:
            return Primitive("proto", Quals(proto), pos=start.pos), None
        if proto is None and dir_ is None and type_ is None:
            what = f"'{tok.text}'" if tok.kind != "end" else "end of expression"
            raise self.error(f"syntax error: unexpected {what}", tok)
        quals = Quals(proto, dir_, type_)
        return self.parse_id(quals), quals

    def parse_byte(self, tok: Token) -> Node:
        """libpcap's ``byte N op M`` (op one of = < >): ``link[N] op M``. libpcap's code for
        ``&`` and ``|`` loads no byte at all (it tests whatever A holds), so those are
        refused rather than imitated."""
        self.advance()
        idx = self.tok
        if idx.kind != "num":
            raise self.error("syntax error: 'byte' needs a byte offset")
        self.advance()
        op = self.tok
        if op.kind != "op" or op.text not in ("=", "<", ">", "&", "|"):
            raise self.error("syntax error: 'byte N' needs one of = < > & |")
        if op.text in ("&", "|"):
            raise self.error(f"'byte N {op.text} M' is not supported (libpcap's code for it "
                             "does not load the byte); use link[N] & M != 0", op)
        self.advance()
        val = self.tok
        if val.kind != "num":
            raise self.error("syntax error: 'byte N op' needs a number")
        self.advance()
        load = PacketLoad("link", Num(idx.value, pos=idx.pos), 1, pos=tok.pos)
        return Relation(op.text, load, Num(val.value, pos=val.pos), pos=op.pos)

    def parse_id(self, quals: Quals) -> Node:
        tok = self.tok
        if self.at("not"):
            self.advance()
            return Not(self.parse_id(quals), pos=tok.pos)
        if self.at("("):
            self.advance()
            node = self.parse_id(quals)
            while self.at("and", "or"):
                op = self.advance()
                right = self.parse_id(quals)
                node = (And if op.text == "and" else Or)(node, right, pos=op.pos)
            self.expect(")")
            return node
        if tok.kind not in ("num", "ip", "ip6", "mac", "id"):
            what = f"'{tok.text}'" if tok.kind != "end" else "end of expression"
            raise self.error(f"syntax error: expected an address, name or number, found {what}")
        self.advance()
        extra = None
        if quals.type == "portrange" and self.at("-"):
            self.advance()
            hi = self.tok
            if hi.kind not in ("num", "id"):
                raise self.error("syntax error: expected a port after '-'")
            self.advance()
            extra = ("range", hi)
        elif self.at("/") and tok.kind in ("ip", "num", "ip6"):
            self.advance()
            plen = self.tok
            if plen.kind != "num":
                raise self.error("syntax error: expected a prefix length after '/'")
            self.advance()
            extra = ("len", plen)
        elif self.at("mask") and tok.kind in ("ip", "num"):
            self.advance()
            m = self.tok
            if m.kind not in ("ip", "num"):
                raise self.error("syntax error: expected a netmask after 'mask'")
            self.advance()
            extra = ("mask", m)
        return Primitive("id", quals, token=tok, extra=extra, pos=tok.pos)

    # --- arithmetic level --------------------------------------------------------------
    def parse_arith(self, level: int = 0) -> Arith:
        if level == len(_BINARY_LEVELS):
            return self.parse_unary()
        node = self.parse_arith(level + 1)
        while self.tok.kind == "op" and self.tok.text in _BINARY_LEVELS[level]:
            op = self.advance()
            right = self.parse_arith(level + 1)
            node = BinOp(op.text, node, right, pos=op.pos)
        return node

    def parse_unary(self) -> Arith:
        tok = self.tok
        if self.at("-"):
            self.advance()
            return Negate(self.parse_unary(), pos=tok.pos)
        if self.at("("):
            self.advance()
            node = self.parse_arith()
            self.expect(")")
            return node
        if tok.kind == "num":
            self.advance()
            return Num(tok.value, pos=tok.pos)
        if tok.kind == "id" and tok.text in NAMED_CONSTANTS:
            self.advance()
            return Num(NAMED_CONSTANTS[tok.text], pos=tok.pos)
        if self.at("len"):
            self.advance()
            return Length(pos=tok.pos)
        if tok.kind == "kw" and tok.text in PROTOCOLS and self.peek().kind == "op" \
                and self.peek().text == "[":
            self.advance()
            self.advance()
            offset = self.parse_arith()
            size = 1
            if self.at(":"):
                self.advance()
                st = self.tok
                if st.kind != "num" or st.value not in (1, 2, 4):
                    raise self.error("data size must be 1, 2, or 4", st)
                self.advance()
                size = st.value
            self.expect("]")
            return PacketLoad(tok.text, offset, size, pos=tok.pos)
        raise self.error(f"syntax error: unexpected '{tok.text}'" if tok.kind != "end"
                         else "syntax error: unexpected end of expression")


def parse(expr: str) -> Node | None:
    """The syntax tree of ``expr`` (None for the empty expression, which accepts everything)."""
    return Parser(expr).parse()
