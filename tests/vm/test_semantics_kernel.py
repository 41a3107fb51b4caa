"""The tricky corners of RFC 9669 give the same r0 in the interpreter as in the kernel.

Each case is a small program the verifier accepts; it runs in :class:`pybpf.vm.Interpreter`
(both execution paths) and through BPF_PROG_TEST_RUN. The kernel reports 32 bits of r0, so
each program also runs with ``r0 >>= 32`` appended and both halves are compared. The expected
values come from the kernel, never from pybpf.
"""

from __future__ import annotations

import pytest

from pybpf import isa
from pybpf.program import Program
from pybpf.vm import Interpreter

asm = pytest.importorskip("pybpf.asm")
kernel = pytest.importorskip("pybpf.kernel", reason="pybpf.kernel (the reference) is missing")

pytestmark = pytest.mark.kernel

#: a packet for skb programs: Ethernet header + a recognisable payload
PACKET = bytes(range(0x10, 0x10 + 64))

SETUP = """
r1 = 0x8000000000000000 ll
r2 = -1
r3 = 0xfedcba9876543210 ll
r4 = 0
r5 = 0x80000000
*(u64 *)(r10 - 8) = r3
*(u64 *)(r10 - 16) = r4
"""

CASES = {
    # signed division and modulo at the overflow point, 64 and 32 bits
    "sdiv64_intmin_by_minus_one": "r0 = r1\nr0 s/= r2",
    "smod64_intmin_by_minus_one": "r0 = r1\nr0 s%= r2",
    "sdiv32_intmin_by_minus_one": "r0 = r3\nw0 = w5\nw0 s/= w2",
    "smod32_intmin_by_minus_one": "r0 = r3\nw0 = w5\nw0 s%= w2",
    "sdiv64_negative_truncates_toward_zero": "r0 = -7\nr6 = 2\nr0 s/= r6",
    "smod64_negative_keeps_dividend_sign": "r0 = -7\nr6 = 2\nr0 s%= r6",
    "smod32_by_negative": "w0 = 7\nw6 = -2\nw0 s%= w6",
    "sdiv64_by_zero_register": "r0 = r3\nr0 s/= r4",
    "smod64_by_zero_register": "r0 = r3\nr0 s%= r4",
    "smod32_by_zero_register_zero_extends": "r0 = r3\nw0 s%= w4",
    # unsigned division by zero
    "div64_by_zero_register": "r0 = r3\nr0 /= r4",
    "mod64_by_zero_register_keeps_dst": "r0 = r3\nr0 %= r4",
    "div32_by_zero_register": "r0 = r3\nw0 /= w4",
    "mod32_by_zero_register_zero_extends": "r0 = r3\nw0 %= w4",
    "div32_ignores_high_bits": "r0 = r3\nr6 = 0x100000003 ll\nw0 /= w6",
    # shifts by registers beyond the width are masked
    "lsh64_by_register_65": "r0 = r3\nr6 = 65\nr0 <<= r6",
    "rsh64_by_register_127": "r0 = r3\nr6 = 127\nr0 >>= r6",
    "arsh64_by_register_68": "r0 = r1\nr6 = 68\nr0 s>>= r6",
    "lsh32_by_register_33": "r0 = r3\nw6 = 33\nw0 <<= w6",
    "rsh32_by_register_40": "r0 = r3\nw6 = 40\nw0 >>= w6",
    "arsh32_by_register_35": "r0 = r3\nw6 = 35\nw0 s>>= w6",
    "arsh32_immediate": "r0 = r3\nw0 s>>= 4",
    # 32-bit results zero-extend
    "add32_wraps_and_zero_extends": "r0 = r3\nw0 += w3",
    "neg32": "r0 = r3\nw0 = -w0",
    "neg64": "r0 = r3\nr0 = -r0",
    "mov32_register_zero_extends": "r0 = r3\nw0 = w3",
    "mov32_negative_immediate": "w0 = -1",
    "mov64_negative_immediate_sign_extends": "r0 = -2",
    # sign extension
    "movsx64_8": "r6 = 0x80\nr0 = (s8)r6",
    "movsx64_16": "r6 = 0x8001\nr0 = (s16)r6",
    "movsx64_32": "r0 = (s32)r3",
    "movsx32_8": "r6 = 0xff\nw0 = (s8)w6",
    "movsx32_16": "r6 = 0x18000\nw0 = (s16)w6",
    "ldsx8": "r0 = *(s8 *)(r10 - 8)",
    "ldsx16": "r0 = *(s16 *)(r10 - 6)",
    "ldsx32": "r0 = *(s32 *)(r10 - 4)",
    "ldx8_zero_extends": "r0 = *(u8 *)(r10 - 1)",
    # byte order
    "le16": "r0 = r3\nr0 = le16 r0",
    "le32": "r0 = r3\nr0 = le32 r0",
    "le64": "r0 = r3\nr0 = le64 r0",
    "be16": "r0 = r3\nr0 = be16 r0",
    "be32": "r0 = r3\nr0 = be32 r0",
    "be64": "r0 = r3\nr0 = be64 r0",
    "bswap16": "r0 = r3\nr0 = bswap16 r0",
    "bswap32": "r0 = r3\nr0 = bswap32 r0",
    "bswap64": "r0 = r3\nr0 = bswap64 r0",
    # atomics: value fetched and memory left behind
    "fetch_add64": "r0 = 5\nr0 = atomic_fetch_add((u64 *)(r10 - 8), r0)\nr6 = *(u64 *)(r10 - 8)\nr0 ^= r6",
    "fetch_or32": "w0 = 0x0f0f\nw0 = atomic_fetch_or((u32 *)(r10 - 8), w0)\nr6 = *(u64 *)(r10 - 8)\nr0 += r6",
    "fetch_and32": "w0 = 0x0ff0\nw0 = atomic_fetch_and((u32 *)(r10 - 4), w0)\nr6 = *(u64 *)(r10 - 8)\nr0 += r6",
    "fetch_xor64": "r0 = r1\nr0 = atomic_fetch_xor((u64 *)(r10 - 8), r0)\nr6 = *(u64 *)(r10 - 8)\nr0 -= r6",
    "lock_add32": "w6 = 1\nlock *(u32 *)(r10 - 8) += w6\nr0 = *(u64 *)(r10 - 8)",
    "lock_xor64": "lock *(u64 *)(r10 - 8) ^= r1\nr0 = *(u64 *)(r10 - 8)",
    "xchg64": "r0 = 77\nr0 = xchg_64(r10 - 8, r0)\nr6 = *(u64 *)(r10 - 8)\nr0 += r6",
    "xchg32": "w0 = 77\nw0 = xchg32_32(r10 - 8, w0)\nr6 = *(u64 *)(r10 - 8)\nr0 += r6",
    "cmpxchg64_success": "r0 = r3\nr6 = 9\nr0 = cmpxchg_64(r10 - 8, r0, r6)\nr7 = *(u64 *)(r10 - 8)\nr0 += r7",
    "cmpxchg64_failure": "r0 = 1\nr6 = 9\nr0 = cmpxchg_64(r10 - 8, r0, r6)\nr7 = *(u64 *)(r10 - 8)\nr0 += r7",
    "cmpxchg32_compares_low_half": "r0 = 0x1176543210 ll\nr6 = 9\nw0 = cmpxchg32_32(r10 - 8, w0, w6)\nr7 = *(u64 *)(r10 - 8)\nr0 += r7",
    # JMP32 looks only at the low halves, signed and unsigned
    "jmp32_ignores_high_bits": "r0 = 1\nr6 = 0x100000005 ll\nif w6 == 5 goto +1\nr0 = 2",
    "jmp32_signed": "r0 = 1\nif w3 s< 0 goto +1\nr0 = 2",
    "jmp64_signed_vs_unsigned": "r0 = 1\nif r1 s> r4 goto +1\nr0 = 2\nif r1 > r4 goto +1\nr0 += 4",
    "jset32": "r0 = 1\nr6 = 0x100000000 ll\nif w6 & 0xffffffff goto +1\nr0 = 2",
    "gotol_skips": "r0 = 1\nif r4 != 0 goto +1\ngotol +1\nr0 = 2\nr0 += 10",
}


def _program(body: str, epilogue: str = "") -> Program:
    program = asm.assemble(SETUP + body + "\n" + epilogue + "exit\n")
    program.prog_type = "socket_filter"
    return program


def kernel_r0(body: str, prog_type: str = "socket_filter", data: bytes = PACKET) -> int:
    low = kernel.test_run(_program(body), data, prog_type=prog_type).retval
    high = kernel.test_run(_program(body, "r0 >>= 32\n"), data, prog_type=prog_type).retval
    return ((high & 0xFFFFFFFF) << 32) | (low & 0xFFFFFFFF)


@pytest.mark.parametrize("body", CASES.values(), ids=CASES.keys())
def test_tricky_operation_gives_the_kernels_r0(body):
    expected = kernel_r0(body)
    vm = Interpreter(_program(body))
    assert vm.run(PACKET) == expected
    assert vm.run(PACKET, stepping=True) == expected


# --- legacy packet loads (LD_ABS / LD_IND) ---------------------------------------------------------
# sched_cls: the skb's data starts at the Ethernet header, as the interpreter's input data does.
# The kernel requires the context in r6 for these instructions.

PACKET_CASES = {
    "ldabs_byte": "r0 = *(u8 *)skb[3]",
    "ldabs_half_is_big_endian": "r0 = *(u16 *)skb[4]",
    "ldabs_word_is_big_endian": "r0 = *(u32 *)skb[10]",
    "ldabs_last_word": "r0 = *(u32 *)skb[60]",
    "ldabs_past_the_end_returns_zero": "r0 = 5\nr0 = *(u32 *)skb[62]\nr0 = 7",
    "ldind_adds_the_register": "r7 = 6\nr0 = *(u16 *)skb[r7 + 3]",
    "ldind_negative_sum_returns_zero": "r0 = 5\nr7 = -10\nr0 = *(u8 *)skb[r7 + 3]\nr0 = 7",
    "ldind_past_the_end_returns_zero": "r0 = 5\nr7 = 60\nr0 = *(u8 *)skb[r7 + 4]\nr0 = 7",
}


@pytest.mark.parametrize("body", PACKET_CASES.values(), ids=PACKET_CASES.keys())
def test_legacy_packet_load_gives_the_kernels_r0(body):
    text = "r6 = r1\n" + body + "\nexit\n"
    program = asm.assemble(text)
    expected = kernel.test_run(program, PACKET, prog_type="sched_cls").retval & 0xFFFFFFFF
    vm = Interpreter(program)
    assert vm.run(PACKET) == expected
    assert vm.run(PACKET, stepping=True) == expected


def test_the_setup_leaves_the_values_the_cases_expect():
    # guards the test itself: r3's pattern really is on the stack
    vm = Interpreter(_program("r0 = *(u64 *)(r10 - 8)"))
    assert vm.run(PACKET) == 0xFEDCBA9876543210
    assert isa.MAX_CALL_DEPTH == 8


# --- bpf-to-bpf calls on generated programs ----------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402

from tests.strategies import describe, sketches  # noqa: E402

I = isa.Instruction


def _with_call(main, sub, high: bool) -> Program:
    """main's body; call sub; r0 ^= r6..r9 mixed (callee-saved registers must survive);
    [r0 >>= 32]; exit -- then sub's body and exit."""
    fold = [I(isa.ALU64 | isa.MUL, 0, imm=31), I(isa.ALU64 | isa.X | isa.ADD, 0, 6),
            I(isa.ALU64 | isa.MUL, 0, imm=31), I(isa.ALU64 | isa.X | isa.XOR, 0, 7),
            I(isa.ALU64 | isa.MUL, 0, imm=31), I(isa.ALU64 | isa.X | isa.ADD, 0, 8),
            I(isa.ALU64 | isa.MUL, 0, imm=31), I(isa.ALU64 | isa.X | isa.SUB, 0, 9)]
    tail = fold + ([I(isa.ALU64 | isa.RSH, 0, imm=32)] if high else []) + [I(isa.JMP | isa.EXIT)]
    probe = main.build([I(isa.JMP | isa.CALL, 0, isa.CALL_LOCAL, 0, 0)] + tail)
    call_slot = probe.num_slots - len(tail) - 1
    first = main.build([I(isa.JMP | isa.CALL, 0, isa.CALL_LOCAL, 0,
                          probe.num_slots - call_slot - 1)] + tail)
    callee = sub.build()
    return Program(first.insns + callee.insns)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(main=sketches(max_body=10), sub=sketches(max_body=14))
def test_generated_programs_with_a_bpf_to_bpf_call_give_the_kernels_r0(main, sub):
    low_prog, high_prog = _with_call(main, sub, False), _with_call(main, sub, True)
    low = kernel.test_run(low_prog, PACKET).retval & 0xFFFFFFFF
    high = kernel.test_run(high_prog, PACKET).retval & 0xFFFFFFFF
    vm = Interpreter(low_prog)
    expected = (high << 32) | low
    assert vm.run(PACKET) == expected, describe(low_prog)
    assert vm.run(PACKET, stepping=True) == expected


# --- loops on generated programs ---------------------------------------------------------------------
# A bounded loop (the counter lives in a stack slot, so the verifier knows it exactly) around a
# generated straight-line body: the back edge exercises the fast path's loop regions.

from hypothesis import strategies as st  # noqa: E402

from tests.strategies import body_insn, u64s  # noqa: E402

COUNTER, SAVED_R0 = -72, -80


def _loop_program(inits: list[int], stack: list[int], body: list, n: int, high: bool) -> Program:
    insns = [I.lddw(reg, value) for reg, value in enumerate(inits)]
    insns += [I(isa.ST | isa.MEM | isa.DW, 10, 0, -8 * (i + 1), v) for i, v in enumerate(stack)]
    insns.append(I(isa.ST | isa.MEM | isa.DW, 10, 0, COUNTER, n))
    body_slots = sum(i.slots for i in body)
    tail = [I(isa.STX | isa.MEM | isa.DW, 10, 0, SAVED_R0),
            I(isa.LDX | isa.MEM | isa.DW, 0, 10, COUNTER),
            I(isa.ALU64 | isa.SUB, 0, imm=1),
            I(isa.STX | isa.MEM | isa.DW, 10, 0, COUNTER),
            I(isa.JMP | isa.JEQ, 0, off=2),
            I(isa.LDX | isa.MEM | isa.DW, 0, 10, SAVED_R0)]
    back = -(body_slots + len(tail) + 1)                  # to the first body instruction
    tail += [I(isa.JMP | isa.JA, off=back), I(isa.LDX | isa.MEM | isa.DW, 0, 10, SAVED_R0)]
    tail += [I(isa.ALU64 | isa.RSH, 0, imm=32)] if high else []
    return Program(insns + list(body) + tail + [I(isa.JMP | isa.EXIT)])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(inits=st.lists(u64s, min_size=10, max_size=10),
       stack=st.lists(st.integers(-(1 << 31), (1 << 31) - 1), min_size=8, max_size=8),
       body=st.lists(body_insn(), min_size=1, max_size=12), n=st.integers(1, 5))
def test_generated_loops_give_the_kernels_r0(inits, stack, body, n):
    low_prog = _loop_program(inits, stack, body, n, False)
    low = kernel.test_run(low_prog, PACKET).retval & 0xFFFFFFFF
    high = kernel.test_run(_loop_program(inits, stack, body, n, True), PACKET).retval
    expected = ((high & 0xFFFFFFFF) << 32) | low
    vm = Interpreter(low_prog)
    assert vm.run(PACKET) == expected, describe(low_prog)
    assert vm.run(PACKET, stepping=True) == expected
