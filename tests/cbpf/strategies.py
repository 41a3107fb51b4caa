"""Hypothesis strategies for classic programs: mostly near-valid, with the edge cases the
kernel's checker cares about (constant zero divisors, big shifts, M[16], jumps past the end,
unknown ancillary offsets, missing final ret)."""

from __future__ import annotations

from hypothesis import strategies as st

from pybpf.cbpf import isa
from pybpf.cbpf.checker import ALLOWED_CODES

_SORTED_CODES = sorted(ALLOWED_CODES)

ks = st.one_of(
    st.integers(0, 20),
    st.integers(0, 40),
    st.sampled_from([isa.SKF_AD_OFF + o for o in range(0, 72, 4)] + [isa.SKF_AD_OFF + 2,
                     isa.SKF_NET_OFF, isa.SKF_NET_OFF + 9, isa.SKF_LL_OFF + 12, -1]),
    st.integers(0, 0xFFFFFFFF),
).map(lambda k: k & isa.U32)

codes = st.one_of(st.sampled_from(_SORTED_CODES), st.sampled_from(_SORTED_CODES),
                  st.sampled_from(_SORTED_CODES), st.integers(0, 0xFF), st.integers(0, 0xFFFF))


@st.composite
def instructions(draw, codes=codes):
    return isa.Instruction(draw(codes), draw(st.integers(0, 6)), draw(st.integers(0, 6)), draw(ks))


@st.composite
def programs(draw, max_len: int = 10):
    body = draw(st.lists(instructions(), min_size=0, max_size=max_len))
    if draw(st.booleans()):
        body.append(isa.stmt(draw(st.sampled_from([isa.RET | isa.K, isa.RET | isa.A,
                                                    isa.RET | isa.X])), draw(ks)))
    return body


# --- programs valid for the kernel, to run -------------------------------------------------
_RUN_CODES = sorted(ALLOWED_CODES - {isa.LD | isa.W | isa.MEM, isa.LDX | isa.W | isa.MEM})


@st.composite
def valid_programs(draw, max_len: int = 12):
    """Checker-valid programs: every M[k] read is preceded by a store at the start."""
    from pybpf.cbpf.checker import is_valid
    n = draw(st.integers(1, max_len))
    prologue = [isa.stmt(isa.ST, i) for i in range(4)] + [isa.stmt(isa.STX, i) for i in range(4, 6)]
    body = []
    for pc in range(n):
        code = draw(st.sampled_from(_RUN_CODES + [isa.LD | isa.W | isa.MEM, isa.LDX | isa.W | isa.MEM]))
        remaining = n - pc  # instructions after this one, before the final ret
        if code in (isa.LD | isa.W | isa.MEM, isa.LDX | isa.W | isa.MEM, isa.ST, isa.STX):
            k = draw(st.integers(0, 5))
        elif code & 7 == isa.JMP:
            k = draw(st.integers(0, max(remaining - 1, 0))) if code == isa.JMP | isa.JA else draw(
                st.one_of(st.integers(0, 300), st.integers(0, 0xFFFFFFFF)))
        elif code & 7 == isa.ALU and code & 0xF0 in (isa.LSH, isa.RSH) and not code & isa.X:
            k = draw(st.integers(0, 31))
        elif code & 7 == isa.ALU and code & 0xF0 in (isa.DIV, isa.MOD) and not code & isa.X:
            k = draw(st.integers(1, 0xFFFFFFFF))
        elif code & 0xE0 in (isa.ABS, isa.IND) and code & 7 == isa.LD:
            k = draw(st.one_of(st.integers(0, 70), st.sampled_from(
                [isa.SKF_AD_OFF + o for o in (0, 4, 40, 44, 48, 60)] +
                [isa.SKF_NET_OFF, isa.SKF_NET_OFF + 9, isa.SKF_LL_OFF + 12]))) & isa.U32
            if code & 0xE0 == isa.IND and k >= 0x80000000:
                k = draw(st.integers(0, 70))
        elif code in (isa.RET | isa.K,):
            k = draw(st.integers(0, 0xFFFFFFFF))
        else:
            k = draw(st.integers(0, 0xFFFFFFFF))
        jt = draw(st.integers(0, max(remaining, 0))) if code & 7 == isa.JMP else 0
        jf = draw(st.integers(0, max(remaining, 0))) if code & 7 == isa.JMP else 0
        body.append(isa.Instruction(code, min(jt, 255), min(jf, 255), k))
    prog = prologue + body + [isa.stmt(isa.RET | isa.A)]
    # repair jumps so they stay in range
    fixed = []
    for pc, ins in enumerate(prog):
        last = len(prog) - 1
        if ins.code == isa.JMP | isa.JA:
            ins = isa.Instruction(ins.code, 0, 0, min(ins.k, last - pc - 1))
        elif ins.code & 7 == isa.JMP:
            ins = isa.Instruction(ins.code, min(ins.jt, last - pc - 1), min(ins.jf, last - pc - 1), ins.k)
        fixed.append(ins)
    assert is_valid(fixed), fixed
    return fixed
