"""Tokens of pcap-filter(7) expressions, after libpcap's scanner.l.

Every token keeps its character position so that :class:`pybpf.errors.FilterError` can point
at it. Addresses are recognised the way libpcap's scanner does: dotted IPv4 (also the partial
forms ``10``, ``10.1``, ``10.1.2`` used by ``net``), IPv6 (anything with ``::`` or several
colons), MAC addresses (``aa:bb:cc:dd:ee:ff``, ``aa-bb-...``, ``aabb.ccdd.eeff``); names may
contain ``-``, ``_`` and ``.`` (``tcp-syn``, ``icmp-echo``); ``\\name`` escapes a keyword.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ..errors import FilterError

KEYWORDS = {
    "dst", "src", "host", "gateway", "net", "netmask", "mask", "port", "portrange", "proto",
    "protochain", "less", "greater", "byte", "broadcast", "multicast", "and", "or", "not",
    "ether", "link", "ppp", "slip", "fddi", "tr", "wlan", "ip", "ip6", "arp", "rarp", "tcp",
    "udp", "icmp", "icmp6", "igmp", "igrp", "pim", "vrrp", "carp", "sctp", "ah", "esp", "len",
    "inbound", "outbound", "vlan", "mpls", "pppoed", "pppoes", "geneve",
    "decnet", "lat", "sca", "moprc", "mopdl", "atalk", "aarp", "iso", "stp", "ipx", "netbeui",
    "llc", "ifindex", "clnp", "esis", "isis", "l1", "l2", "iih", "lsp", "snp", "csnp", "psnp",
}

@dataclass(frozen=True)
class Token:
    kind: str        # 'kw', 'num', 'ip', 'ip6', 'mac', 'id', 'op', 'end'
    text: str
    pos: int
    value: object = None


_OPS = ["&&", "||", "<<", ">>", "<=", ">=", "==", "!=", "(", ")", "[", "]", ":", "+", "-", "*",
        "/", "%", "&", "|", "^", "!", "<", ">", "="]
_MAC = re.compile(r"([0-9A-Fa-f]{1,2}([:-])[0-9A-Fa-f]{1,2}(\2[0-9A-Fa-f]{1,2}){4}"
                  r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})(?![\w.:-])")
_IP6 = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")
_NUM = re.compile(r"(0[xX][0-9A-Fa-f]+|[0-9]+)(?![\w.])")
_IP4 = re.compile(r"[0-9]+(\.[0-9]+){1,3}(?![\w:])")
_WORD = re.compile(r"\\?[A-Za-z0-9_][-\w.]*")


def _mac_bytes(text: str) -> bytes:
    if "." in text:
        return bytes.fromhex(text.replace(".", ""))
    return bytes(int(p, 16) for p in re.split("[:-]", text))


def tokenize(expr: str) -> list[Token]:
    toks: list[Token] = []
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c.isspace():
            i += 1
            continue
        m = _MAC.match(expr, i)
        if m and (":" in m.group(0) or "-" in m.group(0) or m.group(0).count(".") == 2):
            toks.append(Token("mac", m.group(0), i, _mac_bytes(m.group(0))))
            i = m.end()
            continue
        m = _IP6.match(expr, i)
        if m and m.group(0).count(":") >= 2:
            text = m.group(0)
            try:
                addr = ipaddress.IPv6Address(text)
            except ValueError:
                raise FilterError(f"bad IPv6 address '{text}'", expr, i) from None
            toks.append(Token("ip6", text, i, addr))
            i = m.end()
            continue
        m = _IP4.match(expr, i)
        if m:
            parts = m.group(0).split(".")
            if any(int(p) > 255 for p in parts):
                raise FilterError(f"bad IPv4 address '{m.group(0)}'", expr, i)
            toks.append(Token("ip", m.group(0), i, [int(p) for p in parts]))
            i = m.end()
            continue
        m = _NUM.match(expr, i)
        if m:
            text = m.group(0)
            if text.lower().startswith("0x"):
                value = int(text, 16)
            elif len(text) > 1 and text.startswith("0"):
                try:
                    value = int(text, 8)
                except ValueError:
                    raise FilterError(f"bad octal number '{text}'", expr, i) from None
            else:
                value = int(text)
            if value > 0xFFFFFFFF:
                raise FilterError(f"number {text} does not fit in 32 bits", expr, i)
            toks.append(Token("num", text, i, value))
            i = m.end()
            continue
        m = _WORD.match(expr, i)
        if m:
            text = m.group(0)
            if text.startswith("\\"):
                toks.append(Token("id", text[1:], i, text[1:]))
            elif text in KEYWORDS:
                toks.append(Token("kw", text, i))
            else:
                toks.append(Token("id", text, i, text))
            i = m.end()
            continue
        for op in _OPS:
            if expr.startswith(op, i):
                canon = {"&&": "and", "||": "or", "!": "not", "==": "="}.get(op, op)
                toks.append(Token("kw" if canon in ("and", "or", "not") else "op", canon, i))
                i += len(op)
                break
        else:
            raise FilterError(f"unexpected character '{c}'", expr, i)
    toks.append(Token("end", "", n))
    return toks
