"""Classic BPF compiled to Python source: the tap's fast path.

A checked classic program is a DAG of basic blocks (jumps go forward), so it becomes nested
``if`` statements with no loop and no dispatch: each load is one bytes indexing or
``struct.unpack_from`` guarded by a length test, each jump one ``if``. Blocks reached from
several places and longer than a few instructions become helper functions, so the source stays
linear in the program size.

Two shapes are generated from the same block code:

* :func:`compile_packet_filter` -> ``f(buf, off, caplen, wirelen) -> int`` for one packet;
* :func:`compile_scanner` -> ``scan(buf, start, end, out)`` that walks classic pcap records in
  ``buf`` and appends the index of every accepted packet to ``out``: no Python call per packet.

Programs with Linux ancillary or negative-offset loads are not compiled (``None`` is returned;
use the interpreter): those loads need a socket buffer, not a file record.
"""

from __future__ import annotations

import struct
from typing import Callable, Sequence

from . import isa
from .checker import check

M32 = 0xFFFFFFFF
_ALU = {isa.ADD: "+", isa.SUB: "-", isa.MUL: "*", isa.OR: "|", isa.AND: "&", isa.XOR: "^",
        isa.LSH: "<<", isa.RSH: ">>"}
_JMP = {isa.JEQ: "==", isa.JGT: ">", isa.JGE: ">="}


def supported(insns: Sequence[isa.Instruction]) -> bool:
    for i in insns:
        if i.code & 7 == isa.LD and i.code & 0xE0 == isa.ABS and i.k & 0x80000000:
            return False
    return True


class _Gen:
    def __init__(self, insns, reject: str, leaf: Callable[[str], list[str]]):
        self.insns = list(insns)
        self.reject = reject
        self.leaf = leaf
        self.uses_mem = any(i.code in (isa.ST, isa.STX, isa.LD | isa.MEM, isa.LDX | isa.MEM)
                            for i in insns)
        self.preds = [0] * len(insns)
        self.block_starts = {0}
        for pc, i in enumerate(insns):
            if i.code & 7 == isa.JMP:
                targets = ([pc + 1 + i.k] if i.code & 0xF0 == isa.JA
                           else [pc + 1 + i.jt, pc + 1 + i.jf])
                for t in targets:
                    self.preds[t] += 1
                    self.block_starts.add(t)
            elif i.code & 7 != isa.RET and pc + 1 < len(insns):
                self.preds[pc + 1] += 1
        self.helpers: dict[int, str] = {}
        self.helper_src: list[str] = []

    def subtree(self, pc: int) -> int:
        """How many distinct instructions the code from ``pc`` reaches (what inlining
        copies)."""
        seen, todo = set(), [pc]
        while todo:
            q = todo.pop()
            if q in seen:
                continue
            seen.add(q)
            i = self.insns[q]
            cls = i.code & 7
            if cls == isa.RET:
                continue
            if cls == isa.JMP:
                todo += ([q + 1 + i.k] if i.code & 0xF0 == isa.JA else [q + 1 + i.jt, q + 1 + i.jf])
            else:
                todo.append(q + 1)
        return len(seen)

    def size(self, pc: int) -> int:
        n = 0
        while True:
            i = self.insns[pc]
            n += 1
            if i.code & 7 in (isa.RET, isa.JMP):
                return n
            pc += 1

    def block(self, pc: int, ind: str, top: bool = False) -> list[str]:
        """Statements for the code starting at ``pc`` (always ending in a leaf)."""
        if not top and self.preds[pc] > 1 and self.subtree(pc) > 6:
            name = self.helper(pc)
            args = "A, X, M" if self.uses_mem else "A, X"
            return [f"{ind}r = {name}(b, p, n, w, {args})"] + self.leaf_value("r", ind)
        out: list[str] = []
        while True:
            i = self.insns[pc]
            code, k = i.code, i.k & M32
            cls = code & 7
            if cls == isa.RET:
                src = code & 0x18
                if src == isa.K:
                    out += self.leaf(str(k), ind)
                else:
                    out += self.leaf_value("A" if src == isa.A else "X", ind)
                return out
            if cls == isa.JMP:
                op = code & 0xF0
                if op == isa.JA:
                    return out + self.block(pc + 1 + k, ind)
                rhs = "X" if code & isa.X else str(k)
                cond = f"A & {rhs}" if op == isa.JSET else f"A {_JMP[op]} {rhs}"
                t, f = pc + 1 + i.jt, pc + 1 + i.jf
                if t == f:
                    return out + self.block(t, ind)
                if self.size(t) > self.size(f):
                    t, f, cond = f, t, f"not ({cond})"
                out.append(f"{ind}if {cond}:")
                out += self.block(t, ind + "    ")
                return out + self.block(f, ind)
            out += self.stmt(i, ind)
            pc += 1

    def leaf_value(self, var: str, ind: str) -> list[str]:
        return self.leaf(var, ind)

    def helper(self, pc: int) -> str:
        if pc in self.helpers:
            return self.helpers[pc]
        name = f"_blk{pc}"
        self.helpers[pc] = name
        args = "A, X, M" if self.uses_mem else "A, X"
        saved_leaf, saved_reject = self.leaf, self.reject
        self.leaf, self.reject = (lambda v, ind: [f"{ind}return {v}"]), "return 0"
        body = self.block(pc, "    ", top=True)
        self.leaf, self.reject = saved_leaf, saved_reject
        self.helper_src.append(f"def {name}(b, p, n, w, {args}):\n" + "\n".join(body))
        return name

    def load(self, size: int, off: str, ind: str, const: int | None) -> list[str]:
        nb = isa.SIZE_BYTES[size]
        out = []
        if const is not None:
            out.append(f"{ind}if n < {const + nb}: {self.reject}")
            at = f"p + {const}"
        else:
            out.append(f"{ind}t = {off}")
            out.append(f"{ind}if t + {nb} > n: {self.reject}")
            at = "p + t"
        if nb == 1:
            out.append(f"{ind}A = b[{at}]")
        elif nb == 2:
            out.append(f"{ind}A = H(b, {at})[0]")
        else:
            out.append(f"{ind}A = I(b, {at})[0]")
        return out

    def stmt(self, i: isa.Instruction, ind: str) -> list[str]:
        code, k = i.code, i.k & M32
        cls = code & 7
        if cls == isa.LD:
            mode = code & 0xE0
            if mode == isa.ABS:
                return self.load(code & 0x18, "", ind, k)
            if mode == isa.IND:
                return self.load(code & 0x18, f"(X + {k}) & 0xFFFFFFFF", ind, None)
            if mode == isa.LEN:
                return [f"{ind}A = w"]
            if mode == isa.IMM:
                return [f"{ind}A = {k}"]
            return [f"{ind}A = M[{k}]"]
        if cls == isa.LDX:
            mode = code & 0xE0
            if mode == isa.MSH:
                return [f"{ind}if n <= {k}: {self.reject}", f"{ind}X = (b[p + {k}] & 15) << 2"]
            if mode == isa.LEN:
                return [f"{ind}X = w"]
            if mode == isa.IMM:
                return [f"{ind}X = {k}"]
            return [f"{ind}X = M[{k}]"]
        if cls == isa.ST:
            return [f"{ind}M[{k}] = A"]
        if cls == isa.STX:
            return [f"{ind}M[{k}] = X"]
        if cls == isa.MISC:
            return [f"{ind}X = A"] if code & 0xF8 == isa.TAX else [f"{ind}A = X"]
        # ALU
        op = code & 0xF0
        rhs = "X" if code & isa.X else str(k)
        if op == isa.NEG:
            return [f"{ind}A = -A & 0xFFFFFFFF"]
        if op in (isa.DIV, isa.MOD):
            pre = [f"{ind}if X == 0: {self.reject}"] if code & isa.X else []
            return pre + [f"{ind}A = A {'//' if op == isa.DIV else '%'} {rhs}"]
        if op in (isa.LSH, isa.RSH) and code & isa.X:
            rhs = "(X & 31)"
        expr = f"A {_ALU[op]} {rhs}"
        if op in (isa.AND, isa.RSH, isa.OR, isa.XOR):
            return [f"{ind}A = {expr}"]
        return [f"{ind}A = ({expr}) & 0xFFFFFFFF"]


_GLOBALS = {"H": struct.Struct(">H").unpack_from, "I": struct.Struct(">I").unpack_from,
            "REC": struct.Struct("<8xII").unpack_from}


def _build(src: str, name: str):
    ns = dict(_GLOBALS)
    exec(compile(src, f"<cbpf-pyjit {name}>", "exec"), ns)
    return ns[name]


def packet_filter_source(insns: Sequence[isa.Instruction]) -> str:
    g = _Gen(insns, "return 0", lambda v, ind: [f"{ind}return {v}"])
    init = ["    A = X = 0"] + (["    M = [0] * 16"] if g.uses_mem else [])
    body = g.block(0, "    ", top=True)
    return "\n\n".join(g.helper_src + ["def filt(b, p, n, w):\n" + "\n".join(init + body)]) + "\n"


def compile_packet_filter(insns: Sequence[isa.Instruction]):
    """``f(buf, off, caplen, wirelen) -> return value`` or None when not supported."""
    check(insns)
    if not supported(insns):
        return None
    return _build(packet_filter_source(insns), "filt")


def scanner_source(insns: Sequence[isa.Instruction], endian: str = "<") -> str:
    def leaf(v, ind):
        if v.isdigit():
            return [f"{ind}out.append(i)", f"{ind}continue"] if int(v) else [f"{ind}continue"]
        return [f"{ind}if {v}: out.append(i)", f"{ind}continue"]

    g = _Gen(insns, "continue", leaf)
    body = g.block(0, "        ", top=True)
    rec = "REC" if endian == "<" else "RECBE"
    loop = [
        "def scan(b, start, end, out):",
        "    o = start",
        "    i = -1",
        "    while o < end:",
        f"        n, w = {rec}(b, o)",
        "        p = o + 16",
        "        o = p + n",
        "        i += 1",
        "        if o > end: raise ValueError(i)",
        "        A = X = 0",
    ] + (["        M = [0] * 16"] if g.uses_mem else []) + body
    return "\n\n".join(g.helper_src + ["\n".join(loop)]) + "\n"


def compile_scanner(insns: Sequence[isa.Instruction], endian: str = "<"):
    """``scan(buf, 24, len(buf), out)`` over classic pcap records, or None."""
    check(insns)
    if not supported(insns):
        return None
    ns_extra = {"RECBE": struct.Struct(">8xII").unpack_from}
    src = scanner_source(insns, endian)
    ns = dict(_GLOBALS, **ns_extra)
    exec(compile(src, "<cbpf-pyjit scan>", "exec"), ns)
    return ns["scan"]
