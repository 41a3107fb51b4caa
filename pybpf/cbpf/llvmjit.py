"""Batch JIT for classic BPF through LLVM (llvmlite): one native function filters every record
of a pcap file held in memory, the loop over records and the filter compiled together.

``scan(buf, start, end, out) -> n`` walks the classic pcap records of ``buf[start:end]``, runs
the filter on each (the packet is the record's data, ``len`` its original length) and writes
the index of every accepted packet into the ``uint32`` array ``out``; it returns how many, or
``-(i + 1)`` when record ``i`` is truncated. Semantics are the classic machine's: a load outside
the captured bytes or a division by a zero X rejects the packet.

Programs with Linux ancillary or negative-offset loads (they need a socket buffer, not a file
record) are not compiled: :func:`compile_batch` returns None and callers use the interpreter.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Sequence

from . import isa
from .checker import check
from .pyjit import supported

_BIN = {isa.ADD: "add", isa.SUB: "sub", isa.MUL: "mul", isa.OR: "or", isa.AND: "and",
        isa.XOR: "xor", isa.LSH: "shl", isa.RSH: "lshr", isa.DIV: "udiv", isa.MOD: "urem"}
_CMP = {isa.JEQ: "eq", isa.JGT: "ugt", isa.JGE: "uge"}


class _IR:
    def __init__(self):
        self.lines: list[str] = []
        self.n = 0

    def tmp(self) -> str:
        self.n += 1
        return f"%t{self.n}"

    def emit(self, text: str) -> None:
        self.lines.append("  " + text)

    def label(self, name: str) -> None:
        self.lines.append(f"{name}:")

    def op(self, text: str) -> str:
        t = self.tmp()
        self.emit(f"{t} = {text}")
        return t


def _load_packet(ir: _IR, size: int, off64: str, reject: str) -> str:
    """A = big-endian load of ``size`` bytes at packet offset ``off64`` (i64), bounds-checked
    against the captured length."""
    nb = isa.SIZE_BYTES[size]
    end = ir.op(f"add i64 {off64}, {nb}")
    bad = ir.op(f"icmp ugt i64 {end}, %caplen")
    ok = f"ok{ir.n}"
    ir.emit(f"br i1 {bad}, label %{reject}, label %{ok}")
    ir.label(ok)
    at = ir.op(f"add i64 %p, {off64}")
    ptr = ir.op(f"getelementptr i8, ptr %buf, i64 {at}")
    ty = {1: "i8", 2: "i16", 4: "i32"}[nb]
    v = ir.op(f"load {ty}, ptr {ptr}, align 1")
    if nb > 1:
        v = ir.op(f"call {ty} @llvm.bswap.{ty}({ty} {v})")
    if nb < 4:
        v = ir.op(f"zext {ty} {v} to i32")
    return v


def scanner_ir(insns: Sequence[isa.Instruction]) -> str:
    ir = _IR()
    n = len(insns)
    ir.lines.append("define i64 @scan(ptr %buf, i64 %start, i64 %end, ptr %out) {")
    ir.label("entry")
    for name, ty in (("A", "i32"), ("X", "i32"), ("o", "i64"), ("i", "i64"), ("cnt", "i64")):
        ir.emit(f"%{name}.p = alloca {ty}")
    ir.emit("%M = alloca [16 x i32]")
    ir.emit("store i64 %start, ptr %o.p")
    ir.emit("store i64 0, ptr %i.p")
    ir.emit("store i64 0, ptr %cnt.p")
    ir.emit("br label %loop")
    ir.label("loop")
    ir.emit("%o = load i64, ptr %o.p")
    ir.emit("%done = icmp uge i64 %o, %end")
    ir.emit("br i1 %done, label %exit, label %rec")
    ir.label("rec")
    ir.emit("%hdr_end = add i64 %o, 16")
    ir.emit("%short = icmp ugt i64 %hdr_end, %end")
    ir.emit("br i1 %short, label %bad, label %rec2")
    ir.label("rec2")
    ir.emit("%clp = getelementptr i8, ptr %buf, i64 %o")
    ir.emit("%clp8 = getelementptr i8, ptr %clp, i64 8")
    ir.emit("%cl32 = load i32, ptr %clp8, align 1")
    ir.emit("%wlp = getelementptr i8, ptr %clp, i64 12")
    ir.emit("%wirelen = load i32, ptr %wlp, align 1")
    ir.emit("%caplen = zext i32 %cl32 to i64")
    ir.emit("%p = add i64 %o, 16")
    ir.emit("%next = add i64 %p, %caplen")
    ir.emit("%trunc = icmp ugt i64 %next, %end")
    ir.emit("br i1 %trunc, label %bad, label %L0")

    for pc, ins in enumerate(insns):
        ir.label(f"L{pc}")
        code, k = ins.code, ins.k & isa.U32
        cls = code & 7
        nxt = f"L{pc + 1}"
        if cls == isa.LD or cls == isa.LDX:
            mode, size = code & 0xE0, code & 0x18
            dst = "A" if cls == isa.LD else "X"
            if cls == isa.LD and mode == isa.ABS:
                v = _load_packet(ir, size, str(k), "reject")
            elif cls == isa.LD and mode == isa.IND:
                x = ir.op("load i32, ptr %X.p")
                x64 = ir.op(f"zext i32 {x} to i64")
                off = ir.op(f"add i64 {x64}, {k}")
                off = ir.op(f"and i64 {off}, 4294967295")
                v = _load_packet(ir, size, off, "reject")
            elif mode == isa.LEN:
                v = "%wirelen"
            elif mode == isa.IMM:
                v = str(k)
            elif mode == isa.MEM:
                ptr = ir.op(f"getelementptr [16 x i32], ptr %M, i64 0, i64 {k}")
                v = ir.op(f"load i32, ptr {ptr}")
            else:  # MSH
                b = _load_packet(ir, isa.B, str(k), "reject")
                b = ir.op(f"and i32 {b}, 15")
                v = ir.op(f"shl i32 {b}, 2")
            ir.emit(f"store i32 {v}, ptr %{dst}.p")
            ir.emit(f"br label %{nxt}")
        elif cls in (isa.ST, isa.STX):
            v = ir.op(f"load i32, ptr %{'A' if cls == isa.ST else 'X'}.p")
            ptr = ir.op(f"getelementptr [16 x i32], ptr %M, i64 0, i64 {k}")
            ir.emit(f"store i32 {v}, ptr {ptr}")
            ir.emit(f"br label %{nxt}")
        elif cls == isa.ALU:
            op = code & 0xF0
            a = ir.op("load i32, ptr %A.p")
            if op == isa.NEG:
                r = ir.op(f"sub i32 0, {a}")
            else:
                if code & isa.X:
                    rhs = ir.op("load i32, ptr %X.p")
                    if op in (isa.DIV, isa.MOD):
                        z = ir.op(f"icmp eq i32 {rhs}, 0")
                        okl = f"nz{ir.n}"
                        ir.emit(f"br i1 {z}, label %reject, label %{okl}")
                        ir.label(okl)
                    if op in (isa.LSH, isa.RSH):
                        rhs = ir.op(f"and i32 {rhs}, 31")
                else:
                    rhs = str(k)
                r = ir.op(f"{_BIN[op]} i32 {a}, {rhs}")
            ir.emit(f"store i32 {r}, ptr %A.p")
            ir.emit(f"br label %{nxt}")
        elif cls == isa.JMP:
            op = code & 0xF0
            if op == isa.JA:
                ir.emit(f"br label %L{pc + 1 + k}")
                continue
            a = ir.op("load i32, ptr %A.p")
            rhs = ir.op("load i32, ptr %X.p") if code & isa.X else str(k)
            if op == isa.JSET:
                m = ir.op(f"and i32 {a}, {rhs}")
                c = ir.op(f"icmp ne i32 {m}, 0")
            else:
                c = ir.op(f"icmp {_CMP[op]} i32 {a}, {rhs}")
            ir.emit(f"br i1 {c}, label %L{pc + 1 + ins.jt}, label %L{pc + 1 + ins.jf}")
        elif cls == isa.RET:
            src = code & 0x18
            if src == isa.K:
                ir.emit(f"br label %{'accept' if k else 'reject'}")
            else:
                v = ir.op(f"load i32, ptr %{'A' if src == isa.A else 'X'}.p")
                c = ir.op(f"icmp ne i32 {v}, 0")
                ir.emit(f"br i1 {c}, label %accept, label %reject")
        else:  # MISC
            src, dst = ("A", "X") if code & 0xF8 == isa.TAX else ("X", "A")
            v = ir.op(f"load i32, ptr %{src}.p")
            ir.emit(f"store i32 {v}, ptr %{dst}.p")
            ir.emit(f"br label %{nxt}")
    ir.label("accept")
    ir.emit("%c = load i64, ptr %cnt.p")
    ir.emit("%iv = load i64, ptr %i.p")
    ir.emit("%i32 = trunc i64 %iv to i32")
    ir.emit("%slot = getelementptr i32, ptr %out, i64 %c")
    ir.emit("store i32 %i32, ptr %slot")
    ir.emit("%c1 = add i64 %c, 1")
    ir.emit("store i64 %c1, ptr %cnt.p")
    ir.emit("br label %reject")
    ir.label("reject")
    ir.emit("%i0 = load i64, ptr %i.p")
    ir.emit("%i1 = add i64 %i0, 1")
    ir.emit("store i64 %i1, ptr %i.p")
    ir.emit("store i64 %next, ptr %o.p")
    ir.emit("br label %loop")
    ir.label("bad")
    ir.emit("%ib = load i64, ptr %i.p")
    ir.emit("%neg = sub i64 -1, %ib")
    ir.emit("ret i64 %neg")
    ir.label("exit")
    ir.emit("%cf = load i64, ptr %cnt.p")
    ir.emit("ret i64 %cf")
    ir.lines.append("}")
    decls = ["declare i16 @llvm.bswap.i16(i16)", "declare i32 @llvm.bswap.i32(i32)"]
    return "\n".join(decls + ir.lines) + "\n"


@functools.cache
def _llvm():
    import llvmlite.binding as llvm
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm


class BatchFilter:
    """A compiled scanner; keep it alive while calling it."""

    OPT = 1     # -O1 already promotes A, X, M[] to registers; -O2 costs compile time only

    _PROTO = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                              ctypes.c_void_p)

    def __init__(self, insns: Sequence[isa.Instruction]):
        llvm = _llvm()
        self.ir = scanner_ir(insns)
        mod = llvm.parse_assembly(self.ir)
        mod.verify()
        target = llvm.Target.from_default_triple()
        tm = target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                          features=llvm.get_host_cpu_features().flatten(),
                                          opt=self.OPT, jit=True)
        # a short pipeline: A, X, M[] to registers (SROA), then fold and tidy the branches;
        # LLVM's full -O1/-O2 pipelines cost more compile time than they save on a scan
        pto = llvm.create_pipeline_tuning_options(speed_level=self.OPT)
        pb = llvm.create_pass_builder(tm, pto)
        pm = llvm.create_new_module_pass_manager()
        pm.add_sroa_pass()
        pm.add_instruction_combine_pass()
        pm.add_simplify_cfg_pass()
        pm.run(mod, pb)
        self.engine = llvm.create_mcjit_compiler(mod, tm)
        self.engine.finalize_object()
        self._fn = self._PROTO(self.engine.get_function_address("scan"))

    def scan(self, buf: bytes, start: int = 24, end: int | None = None) -> list[int]:
        """Indexes of the accepted records of a classic pcap image ``buf``."""
        end = len(buf) if end is None else end
        return self._run(ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p).value, start, end)

    def scan_file(self, path: str) -> list[int]:
        """Like :meth:`scan` on a classic little-endian pcap file, mapped rather than read:
        the records are filtered straight from the page cache."""
        import mmap
        import os
        size = os.path.getsize(path)
        if size <= 24:
            return []
        with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as mm:
            anchor = ctypes.c_char.from_buffer(mm)
            try:
                return self._run(ctypes.addressof(anchor), 24, size)
            finally:
                del anchor

    def _run(self, address: int, start: int, end: int) -> list[int]:
        import mmap
        slots = max(1, (end - start) // 16)
        # anonymous memory: zero pages arrive lazily, only the ones written cost anything
        with mmap.mmap(-1, 4 * slots) as outmem:
            out = ctypes.c_char.from_buffer(outmem)
            try:
                n = self._fn(address, start, end, ctypes.addressof(out))
            finally:
                del out
            if n < 0:
                from ..errors import CaptureError
                raise CaptureError(f"truncated record {-n} (its header or data runs past the "
                                   "end)")
            return memoryview(outmem).cast("I")[:n].tolist()


def compile_batch(insns: Sequence[isa.Instruction]) -> BatchFilter | None:
    check(insns)
    if not supported(insns):
        return None
    return BatchFilter(insns)
