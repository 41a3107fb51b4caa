"""From a boolean formula of atoms to optimised classic BPF.

Steps (each one a named function, in the spirit of libpcap's optimize.c but over a decision
graph instead of basic blocks):

1. :func:`build_graph` -- short-circuit translation into a decision DAG (``and``/``or``/``not``
   become edges, like libpcap's backpatching); identical sub-graphs are shared (hash-consing,
   which is *block merging*), and a test whose two edges meet is dropped (*dead code*).
2. :func:`thread_jumps` -- *jump threading* with *constant propagation* of branch facts: on
   every edge we know the outcome of each test that dominates it (``ldh [12] == 0x800`` taken,
   ``ldb [23] == 6`` not taken, ``A > 5``...); a test whose outcome those facts decide is
   bypassed. Facts are about packet values, which never change, so no fact is ever killed.
3. :func:`emit` -- linear code with *redundant load elimination*: the values held in A and X
   on entry to each block (the meet over its predecessors) make loads that would reproduce
   them disappear; constant operands are folded (``and #m; jeq #0`` is ``jset #m``, done by
   the code generator).

Every packet load in the unoptimised graph is still executed on every path that needs its
value, so out-of-bounds loads still end the filter the same way.

``set`` atoms (a store into a scratch word, see :mod:`.codegen`) become nodes whose false
edge is never taken; they are not facts, are never bypassed or reordered, and emit
``st M[k]`` followed by a ``ja`` that disappears when the successor is laid out next.
"""

from __future__ import annotations

from ..errors import FilterError
from . import isa
from .isa import (ABS, ALU, IMM, IND, JMP, LD, LDX, LEN, MEM, MISC, MSH, RET, ST, TAX, TXA)

_JOPS = {"jeq": isa.JEQ, "jgt": isa.JGT, "jge": isa.JGE, "jset": isa.JSET}
_ALUOPS = {"add": isa.ADD, "sub": isa.SUB, "mul": isa.MUL, "div": isa.DIV, "mod": isa.MOD,
           "and": isa.AND, "or": isa.OR, "xor": isa.XOR, "lsh": isa.LSH, "rsh": isa.RSH}


class Leaf:
    __slots__ = ("k",)

    def __init__(self, k: int):
        self.k = k


class DNode:
    """A test: ``atom`` with successors for true and false."""

    __slots__ = ("atom", "t", "f")

    def __init__(self, atom, t, f):
        self.atom, self.t, self.f = atom, t, f


# --- 1. decision graph ----------------------------------------------------------------------
class _Interner:
    def __init__(self):
        self.table = {}

    def node(self, atom, t, f):
        if t is f:
            return t
        key = (atom, id(t), id(f))
        n = self.table.get(key)
        if n is None:
            n = self.table[key] = DNode(atom, t, f)
        return n


def build_graph(formula, accept: Leaf, reject: Leaf, interner: _Interner | None = None):
    it = interner or _Interner()

    def go(f, t, e):
        kind = f[0]
        if kind == "atom":
            if f[1][0] == "set":
                # a store into a scratch word always continues on its true side; the false
                # edge is never taken (it goes to reject so it adds no facts anywhere)
                return it.node(f[1], t, reject) if t is not reject else t
            return it.node(f[1], t, e)
        if kind == "and":
            return go(f[1], go(f[2], t, e), e)
        if kind == "or":
            return go(f[1], t, go(f[2], t, e))
        if kind == "not":
            return go(f[1], e, t)
        if kind == "const":
            return t if f[1] else e
        raise AssertionError(f)

    return go(formula, accept, reject)


def _topo(root) -> list[DNode]:
    """Decision nodes in reverse postorder (predecessors first), the true side laid out
    right after its test when possible, like libpcap."""
    seen, post = set(), []
    stack = [(root, False)]
    while stack:
        n, done = stack.pop()
        if not isinstance(n, DNode):
            continue
        if done:
            post.append(n)
            continue
        if id(n) in seen:
            continue
        seen.add(id(n))
        stack.append((n, True))
        stack.append((n.t, False))   # popped last -> visited last -> placed first
        stack.append((n.f, False))
    post.reverse()
    return post


# --- 1b. factoring (libpcap's or-pullup, done on the formula) -----------------------------
def _conjuncts(f) -> list:
    if f[0] == "and":
        return _conjuncts(f[1]) + _conjuncts(f[2])
    if f == ("const", True):
        return []
    return [f]


def _disjuncts(f) -> list:
    if f[0] == "or":
        return _disjuncts(f[1]) + _disjuncts(f[2])
    return [f]


def _and(items):
    out = None
    for x in items:
        out = x if out is None else ("and", out, x)
    return out if out is not None else ("const", True)


def _or(items):
    out = None
    for x in items:
        out = x if out is None else ("or", out, x)
    return out if out is not None else ("const", False)


def normalize(f):
    """Factor common leading tests out of disjunctions and group comparisons of one value:
    ``(ip and src a) or (ip and src b)`` becomes ``ip and (src a or src b)``, and in
    ``src==22 or dst==22 or src==443 or dst==443`` the loads of ``src`` are tested together.
    Only the order of evaluation changes (as in libpcap's or-pullup)."""
    kind = f[0]
    if kind == "not":
        return ("not", normalize(f[1]))
    if kind == "and":
        return _and([normalize(c) for c in _conjuncts(f)])
    if kind == "or":
        return _factor([_conjuncts(normalize(d)) for d in _disjuncts(f)])
    return f


def _factor(disj: list[list]):
    expanded: list[list] = []
    for conj in disj:
        if len(conj) == 1 and conj[0][0] == "or":
            expanded.extend(_conjuncts(d) for d in _disjuncts(conj[0]))
        else:
            expanded.append(conj)
    groups: dict = {}
    for conj in expanded:
        if not conj:
            return ("const", True)
        groups.setdefault(conj[0], []).append(conj[1:])
    out = []
    for head, rests in groups.items():
        if any(not r for r in rests):
            out.append(head)
        elif len(rests) == 1:
            out.append(_and([head] + rests[0]))
        else:
            out.append(_and([head, _factor(rests)]))
    if len(out) > 1 and all(x[0] == "atom" and x[1][0] == "test" for x in out):
        first = {}
        for x in out:
            first.setdefault(x[1][2], len(first))
        out.sort(key=lambda x: first[x[1][2]])
    return _or(out)


# --- 2. jump threading ------------------------------------------------------------------------
def decide(atom, facts) -> bool | None:
    """The outcome of ``atom`` given known outcomes ``facts`` ({atom: bool}), or None."""
    if atom in facts:
        return facts[atom]
    if atom[0] != "test":
        return None
    _, jop, v, k = atom
    for other, res in facts.items():
        if other[0] != "test" or other[2] != v:
            continue
        ojop, c = other[1], other[3]
        if ojop == "jeq" and res:
            return _EVAL[jop](c, k)
        lo, hi = 0, isa.U32
        if ojop == "jeq":            # v != c
            if jop == "jeq" and k == c:
                return False
            continue
        if ojop == "jgt":
            lo, hi = (c + 1, isa.U32) if res else (0, c)
        elif ojop == "jge":
            lo, hi = (c, isa.U32) if res else (0, c - 1)
        elif ojop == "jset":
            if res and jop == "jset" and (c & ~k) == 0:
                return True
            if not res and jop == "jset" and (k & ~c) == 0:
                return False
            if jop == "jeq" and ((res and k & c == 0) or (not res and k & c)):
                return False
            continue
        if lo > hi:
            continue
        if jop == "jeq":
            if k < lo or k > hi:
                return False
        elif jop == "jgt":
            if lo > k:
                return True
            if hi <= k:
                return False
        elif jop == "jge":
            if lo >= k:
                return True
            if hi < k:
                return False
    return None


_EVAL = {"jeq": lambda a, b: a == b, "jgt": lambda a, b: a > b, "jge": lambda a, b: a >= b,
         "jset": lambda a, b: (a & b) != 0}


def _pure(atom) -> bool:
    """Atoms over values that do not change between reads (not SKF_AD_RANDOM), and not the
    stores into scratch words that give ``("mem", name)`` values (geneve's inner offsets)."""
    return atom[0] != "set" and "('anc', 56)" not in repr(atom)


def _vs_decide(atom, valsets) -> bool | None:
    """Decide ``atom`` from the set of values its operand may have ("in", S) or may not have
    ("notin", E) on every path here."""
    if atom[0] != "test":
        return None
    _, jop, v, k = atom
    vs = valsets.get(v)
    if vs is None:
        return None
    kind, vals = vs
    if kind == "in":
        outcomes = {_EVAL[jop](x, k) for x in vals}
        return outcomes.pop() if len(outcomes) == 1 else None
    if jop == "jeq" and k in vals:
        return False
    return None


def _vs_after(atom, side: bool, valsets):
    """The value-set facts after ``atom`` went to ``side``."""
    if atom[0] != "test":
        return valsets
    _, jop, v, k = atom
    vs = valsets.get(v)
    out = dict(valsets)
    if vs is not None and vs[0] == "in":
        out[v] = ("in", frozenset(x for x in vs[1] if _EVAL[jop](x, k) == side))
    elif jop == "jeq":
        if side:
            out[v] = ("in", frozenset([k]))
        else:
            out[v] = ("notin", (vs[1] if vs else frozenset()) | {k})
    return out


def _vs_meet(a, b):
    """Facts true on both incoming paths: union of possible sets, intersection of excluded."""
    out = {}
    for v, (ka, sa) in a.items():
        if v not in b:
            continue
        kb, sb = b[v]
        if ka == kb == "in":
            out[v] = ("in", sa | sb)
        elif ka == kb == "notin":
            if sa & sb:
                out[v] = ("notin", sa & sb)
        else:
            e, i = (sa, sb) if ka == "notin" else (sb, sa)
            if e - i:
                out[v] = ("notin", e - i)
    return out


def thread_jumps(root):
    """Bypass tests decided by the facts that hold on every path into an edge: outcomes of
    dominating tests, and for each value the set of constants it can (or cannot) equal."""
    order = _topo(root)
    infacts = {id(root): ({}, {})} if isinstance(root, DNode) else {}
    changed = False
    for n in order:
        got = infacts.get(id(n))
        if got is None:
            continue
        facts, valsets = got
        for side in (True, False):
            ef = dict(facts)
            ev = valsets
            if _pure(n.atom):
                ef[n.atom] = side
                ev = _vs_after(n.atom, side, valsets)
            c = n.t if side else n.f
            while isinstance(c, DNode) and _pure(c.atom):
                d = decide(c.atom, ef)
                if d is None:
                    d = _vs_decide(c.atom, ev)
                if d is None:
                    break
                c = c.t if d else c.f
                changed = True
            if side:
                n.t = c
            else:
                n.f = c
            if isinstance(c, DNode):
                prev = infacts.get(id(c))
                if prev is None:
                    infacts[id(c)] = (ef, ev)
                else:
                    infacts[id(c)] = ({a: r for a, r in prev[0].items() if ef.get(a) == r},
                                      _vs_meet(prev[1], ev))
    return changed


def merge(root, leaves: dict[int, Leaf]):
    """Re-intern the graph bottom-up: identical tests with identical successors become one,
    tests whose edges meet disappear."""
    memo = {}
    it = _Interner()

    def canon(n):
        if isinstance(n, Leaf):
            return leaves.setdefault(n.k, n)
        got = memo.get(id(n))
        if got is None:
            got = memo[id(n)] = it.node(n.atom, canon(n.t), canon(n.f))
        return got

    # iterative post-order to avoid deep recursion on long chains
    for n in reversed(_topo(root)):
        canon(n)
    return canon(root)


def optimize_graph(root, leaves):
    root = merge(root, leaves)
    for _ in range(20):
        changed = thread_jumps(root)
        root = merge(root, leaves)
        if not changed:
            break
    return root


# --- 3. emission ------------------------------------------------------------------------------
def _clobbers_x(v) -> bool:
    kind = v[0]
    if kind in ("ind", "msh"):
        return True
    if kind == "alu":
        return v[3][0] not in ("k",) or _clobbers_x(v[2])
    if kind == "neg":
        return _clobbers_x(v[1])
    return False


class _Emitter:
    def __init__(self, reuse: bool, slots: dict | None = None):
        self.reuse = reuse
        self.code: list[isa.Instruction] = []
        self.a = None
        self.x = None
        #: scratch words of named ``("mem", name)`` values; temporaries come after them
        self.slots = slots or {}
        self.scratch = len(self.slots)

    def put(self, code, k=0):
        self.code.append(isa.stmt(code, k))

    def to_x(self, v):
        if self.reuse and self.x == v:
            return
        kind = v[0]
        if kind == "msh":
            self.put(LDX | isa.B | MSH, v[1])
        elif kind == "k":
            self.put(LDX | isa.W | IMM, v[1])
        elif kind == "len":
            self.put(LDX | isa.W | LEN)
        elif kind == "mem":
            self.put(LDX | MEM, self.slots[v[1]])
        else:
            self.to_a(v)
            self.put(MISC | TAX)
        self.x = v

    def to_a(self, v):
        if self.reuse and self.a == v and v != ("anc", 56):
            return
        kind = v[0]
        if kind == "k":
            self.put(LD | isa.W | IMM, v[1])
        elif kind == "len":
            self.put(LD | isa.W | LEN)
        elif kind == "abs":
            self.put(LD | v[1] | ABS, v[2])
        elif kind == "anc":
            self.put(LD | isa.W | ABS, isa.SKF_AD_OFF + v[1])
        elif kind == "mem":
            self.put(LD | MEM, self.slots[v[1]])
        elif kind == "ind":
            self.to_x(v[3])
            self.put(LD | v[1] | IND, v[2])
        elif kind == "msh":
            self.to_x(v)
            self.put(MISC | TXA)
        elif kind == "neg":
            self.to_a(v[1])
            self.put(ALU | isa.NEG)
        elif kind == "alu":
            op, left, right = _ALUOPS[v[1]], v[2], v[3]
            if right[0] == "k":
                self.to_a(left)
                self.put(ALU | op | isa.K, right[1])
            else:
                self.binary(left, right)
                self.put(ALU | op | isa.X)
        else:
            raise AssertionError(v)
        self.a = v

    def binary(self, left, right):
        """A = left, X = right: X first when computing ``left`` keeps X (its indexed loads
        may use that very X), else through a scratch memory word."""
        mark = (len(self.code), self.a, self.x, self.scratch)
        self.to_x(right)
        self.to_a(left)
        if self.x == right:
            return
        del self.code[mark[0]:]
        self.a, self.x, self.scratch = mark[1], mark[2], mark[3]
        self.to_a(left)
        slot = self.scratch
        self.scratch += 1
        if slot >= isa.MEMWORDS:
            raise FilterError("expression too complex (more than 16 scratch memory words)")
        self.put(ST, slot)
        self.to_x(right)
        self.put(LD | MEM, slot)
        self.a = None

    def test(self, atom) -> int:
        """Emit the loads of ``atom`` and return the index of its jump."""
        if atom[0] == "set":
            _, name, v = atom
            self.to_a(v)
            self.put(ST, self.slots[name])
            self.a = ("mem", name)        # the next computation more often starts from it
            self.code.append(isa.stmt(JMP | isa.JA, 0))
            return len(self.code) - 1
        if atom[0] == "test":
            _, jop, v, k = atom
            self.to_a(v)
            self.code.append(isa.Instruction(JMP | _JOPS[jop] | isa.K, 0, 0, k))
        else:
            _, jop, v1, v2 = atom
            self.binary(v1, v2)
            self.a, self.x = v1, v2
            self.code.append(isa.Instruction(JMP | _JOPS[jop] | isa.X, 0, 0, 0))
        return len(self.code) - 1


def emit(root, reuse: bool = True) -> list[isa.Instruction]:
    return _layout(root, reuse)[0]


def _layout(root, reuse: bool = True):
    """Lay out the graph: per-test code with load elimination, then *cross-jumping* (tests
    whose emitted code and targets are identical share one copy, even when they tested
    different values that the predecessors had already loaded), then jump offsets."""
    if isinstance(root, Leaf):
        return [isa.stmt(RET | isa.K, root.k)], {}
    order = _topo(root)
    em = _Emitter(reuse, _slots(order))
    entry: dict[int, tuple] = {id(root): (None, None)}
    blocks: dict[int, list[isa.Instruction]] = {}
    leaves: list[Leaf] = []
    for n in order:
        em.a, em.x = entry[id(n)]
        em.code = []
        em.test(n.atom)
        blocks[id(n)] = em.code
        out = (em.a, em.x)
        for c in (n.t, n.f):
            if isinstance(c, DNode):
                prev = entry.get(id(c))
                entry[id(c)] = out if prev is None else tuple(
                    p if p == o else None for p, o in zip(prev, out))
            elif all(c is not l for l in leaves):
                leaves.append(c)
    # cross-jumping, bottom-up
    rep: dict[int, object] = {}
    sigs: dict[tuple, DNode] = {}

    def canon(c):
        return rep.get(id(c), c)

    for n in reversed(order):
        sig = (tuple(blocks[id(n)]), id(canon(n.t)), id(canon(n.f)))
        keep = sigs.setdefault(sig, n)
        rep[id(n)] = keep
    survivors = []
    seen = set()
    for n in order:
        r = rep[id(n)]
        if id(r) not in seen:
            seen.add(id(r))
            survivors.append(r)
    reachable = {id(canon(root))}
    kept = []
    for n in survivors:
        if id(n) in reachable:
            kept.append(n)
            reachable.add(id(canon(n.t)))
            reachable.add(id(canon(n.f)))
    leaves.sort(key=lambda l: l.k == 0)
    # conditional jumps reach at most 255 instructions; a farther target goes through a
    # ``ja`` trampoline placed right after the jump (libpcap does the same)
    far: dict[int, set[str]] = {}
    for _ in range(64):
        code: list[isa.Instruction] = []
        start: dict[int, int] = {}
        jumps = []
        for i, n in enumerate(kept):
            start[id(n)] = len(code)
            code.extend(blocks[id(n)])
            if n.atom[0] == "set" and _next_is(kept, i, canon(n.t), leaves, reachable):
                code.pop()          # the stored value's successor follows: no ``ja``
                continue
            j = len(code) - 1
            tramp = {}
            for side in ("t", "f"):
                if side in far.get(id(n), ()):
                    tramp[side] = len(code)
                    code.append(isa.stmt(JMP | isa.JA, 0))
            jumps.append((j, n, tramp))
        for leaf in leaves:
            if id(leaf) in reachable:
                start[id(leaf)] = len(code)
                code.append(isa.stmt(RET | isa.K, leaf.k))
        again = False
        for j, n, tramp in jumps:
            if n.atom[0] == "set":
                target = start[id(canon(n.t))]
                code[j] = isa.stmt(JMP | isa.JA, target - j - 1)
                continue
            offs = {}
            for side, child in (("t", n.t), ("f", n.f)):
                target = start[id(canon(child))]
                if side in tramp:
                    code[tramp[side]] = isa.stmt(JMP | isa.JA, target - tramp[side] - 1)
                    target = tramp[side]
                offs[side] = target - j - 1
                if offs[side] > 255:
                    far.setdefault(id(n), set()).add(side)
                    again = True
            code[j] = isa.Instruction(code[j].code, min(offs["t"], 255), min(offs["f"], 255),
                                      code[j].k)
        if not again:
            break
    else:
        raise FilterError("expression too complex (jumps do not fit)")
    return code, entry


def _slots(order) -> dict:
    """Scratch words for the named values stored by ``set`` atoms, in order of appearance."""
    slots: dict = {}
    for n in order:
        if n.atom[0] == "set":
            slots.setdefault(n.atom[1], len(slots))
    if len(slots) > isa.MEMWORDS:
        raise FilterError("expression too complex (more than 16 scratch memory words)")
    return slots


def _next_is(kept, i, target, leaves, reachable) -> bool:
    """Is ``target`` laid out right after ``kept[i]``?"""
    if i + 1 < len(kept):
        return kept[i + 1] is target
    first = next((l for l in leaves if id(l) in reachable), None)
    return first is target


def _value(atom):
    return atom[2]


def reorder_tests(root, reuse: bool = True):
    """Swap two tests of an ``and`` chain (or an ``or`` chain) when the second one compares
    the value already in A: its load disappears. Kept only when the program gets shorter."""
    if isinstance(root, Leaf):
        return root
    code, entry = _layout(root, reuse)
    best = len(code)
    for _ in range(50):
        improved = False
        order = _topo(root)
        preds: dict[int, int] = {}
        for n in order:
            for c in (n.t, n.f):
                preds[id(c)] = preds.get(id(c), 0) + 1
        for n in order:
            a_in = entry.get(id(n), (None, None))[0]
            if a_in is None:
                continue
            for m in (n.t, n.f):
                if not isinstance(m, DNode) or preds.get(id(m)) != 1:
                    continue
                chain = (m is n.t and n.f is m.f) or (m is n.f and n.t is m.t)
                if "set" in (n.atom[0], m.atom[0]):
                    continue
                if not chain or _value(m.atom) != a_in or _value(n.atom) == a_in:
                    continue
                n.atom, m.atom = m.atom, n.atom
                new_code, new_entry = _layout(root, reuse)
                if len(new_code) < best:
                    best, entry, improved = len(new_code), new_entry, True
                    break
                n.atom, m.atom = m.atom, n.atom
            if improved:
                break
        if not improved:
            break
    return root


def build_program(formula, snaplen: int, optimize: bool = True) -> list[isa.Instruction]:
    accept, reject = Leaf(snaplen & isa.U32), Leaf(0)
    leaves = {accept.k: accept, 0: reject}
    if optimize:
        formula = normalize(formula)
    root = build_graph(formula, accept, reject)
    if optimize:
        root = optimize_graph(root, leaves)
        root = reorder_tests(root)
    return emit(root, reuse=optimize)
