"""Compile a bpftrace syntax tree to LLVM IR for the BPF target (llvmlite), then to an object.

The design follows bpftrace's own: every probe becomes one BPF function in its own ELF
section; maps are referenced through ``llvm.bpf.pseudo`` (here with the ``PSEUDO_MAP_IDX``
source, so the object stays independent of any file descriptor and pybpf's loader binds the
maps); helpers are called through their ids, exactly as clang's ``bpf_helpers.h`` does.
Everything user space must do (printf, print, clear, exit, time) travels as an event through
one ring buffer: ``u64 kind, u64 id`` followed by the arguments.

Values: every integer is 64-bit (bpftrace's default); strings are fixed-size byte arrays
(``STRLEN`` = 64, ``comm`` = 16) living on the BPF stack.
"""

from __future__ import annotations

import llvmlite.ir as ir

from ..helpers.ids import HELPER_IDS
from ..isa import PSEUDO_MAP_IDX
from .events import EV_CAT, EV_JOIN, JOIN_ARGNUM, JOIN_ARGSIZE
from . import ast
from .parser import TraceSyntaxError
from .probes import PT_REGS_ARGS, PT_REGS_RET, TracepointField

from .types import (AGGREGATIONS, BPF_F_USER_STACK, COMM_LEN, EV_CLEAR, EV_EXIT,  # noqa: F401
                    EV_PRINT, EV_PRINTF, EV_TIME, EV_ZERO, INT, MAX_STACK_FRAMES, NONE,
                    RINGBUF_SIZE, STRLEN, UINT, CompileUnit, MapInfo, PrintfFormat, SType,
                    _frames_arg, _STACK_TYPES)

i8 = ir.IntType(8)
i32 = ir.IntType(32)
i64 = ir.IntType(64)
i8p = i8.as_pointer()


#: sizeof() of the integer type names a script may write
_TYPE_BYTES = {"int8": 1, "uint8": 1, "char": 1, "int16": 2, "uint16": 2, "short": 2,
               "int32": 4, "uint32": 4, "int": 4, "int64": 8, "uint64": 8, "long": 8}

#: builtins that are one helper's answer
_HELPER_BUILTINS = {"numaid": "bpf_get_numa_node_id", "cgroup": "bpf_get_current_cgroup_id",
                    "jiffies": "bpf_jiffies64"}


class _Scope:
    def __init__(self):
        self.vars: dict[str, tuple[ir.Value, SType]] = {}


class Compiler:
    def __init__(self, script: ast.Script, *, tracepoint_fields=None):
        self.script = script
        self.module = ir.Module(name=script.filename)
        self.module.triple = "bpfel"
        self.module.data_layout = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"
        self.retained: list[tuple[str, str]] = []
        self._debug_info()
        self.maps: dict[str, MapInfo] = {}
        self.formats: list[PrintfFormat] = []
        self.functions: list = []
        self._tp_fields = tracepoint_fields
        # lifetime markers for pooled temporaries: LLVM's stack colouring then lets
        # temporaries of different sizes share the 512-byte stack (see _alloca)
        marker = ir.FunctionType(ir.VoidType(), [i64, i8p])
        self._lifetime_start = ir.Function(self.module, marker, name="llvm.lifetime.start.p0i8")
        self._lifetime_end = ir.Function(self.module, marker, name="llvm.lifetime.end.p0i8")
        self._pseudo = ir.Function(self.module, ir.FunctionType(i64, [i64, i64]),
                                   name="llvm.bpf.pseudo")
        # two internal maps: the event ring buffer and the start time for `elapsed`
        self.ringbuf_index = 0
        self.start_index = 1
        self.stack_index = 2
        self._next_map_index = 3
        self.uses_stacks = False
        self.uses_elapsed = False

    def _debug_info(self) -> None:
        """Debug metadata with the script as its source file: LLVM's BPF backend turns it into
        BTF line info, so the kernel's log, pybpf's verifier explanations and ``disasm -S``
        show the script's own lines."""
        import os

        m = self.module
        # the name as the user gave it, so LLVM's and the kernel's messages repeat it
        self._di_file = m.add_debug_info("DIFile", {
            "filename": self.script.filename, "directory": os.getcwd(),
            "source": self.script.source})
        self._di_cu = m.add_debug_info("DICompileUnit", {
            "language": ir.DIToken("DW_LANG_C99"), "file": self._di_file, "producer": "pybpf",
            "isOptimized": True, "runtimeVersion": 0,
            "emissionKind": ir.DIToken("FullDebug")}, is_distinct=True)
        m.add_named_metadata("llvm.dbg.cu", self._di_cu)
        for key, name, value in ((2, "Debug Info Version", 3), (7, "Dwarf Version", 5)):
            m.add_named_metadata("llvm.module.flags", m.add_metadata(
                [ir.Constant(i32, key), name, ir.Constant(i32, value)]))
        long_t = m.add_debug_info("DIBasicType", {"name": "long", "size": 64,
                                                  "encoding": ir.DIToken("DW_ATE_signed")})
        void_p = m.add_debug_info("DIDerivedType", {"tag": ir.DIToken("DW_TAG_pointer_type"),
                                                    "baseType": None, "size": 64})
        self._di_void_p = void_p
        self._di_fn_type = m.add_debug_info("DISubroutineType", {
            "types": m.add_metadata([long_t, void_p])})

    def _locate(self, node: ast.Node) -> None:
        """Instructions emitted from now on belong to ``node``'s script line."""
        self.b.debug_metadata = self.module.add_debug_info("DILocation", {
            "line": node.line, "column": node.col, "scope": self._di_sp})

    # --- errors ----------------------------------------------------------------------------
    def error(self, message: str, node: ast.Node) -> TraceSyntaxError:
        lines = self.script.source.splitlines()
        text = lines[node.line - 1] if 0 < node.line <= len(lines) else None
        return TraceSyntaxError(message, self.script.filename, node.line, node.col, text)

    # --- entry -----------------------------------------------------------------------------
    def compile(self, attach_list) -> CompileUnit:
        """``attach_list``: (probe, attach point, section name) per program to emit."""
        self._infer_maps()
        for n, (probe, ap, section) in enumerate(attach_list):
            name = f"pbt_{n}"  # kernel program names: 15 characters at most
            self._emit_probe(name, probe, ap, section)
            self.functions.append((name, probe, ap, section))
        return CompileUnit(self.module, self.maps, self.formats, self.functions,
                           self.uses_elapsed, self.ringbuf_index, self.start_index,
                           self.stack_index, self.uses_stacks, self.retained)

    # --- map inference (a pre-pass, so every probe agrees on a map's layout) ---------------
    def _infer_maps(self) -> None:
        for probe in self.script.probes:
            self._infer_stmts(probe.body, {})

    def _infer_stmts(self, stmts, vars_: dict) -> None:
        for stmt in stmts:
            if isinstance(stmt, ast.Assign):
                vtype = self._static_type(stmt.value, vars_)
                if isinstance(stmt.target, ast.Variable):
                    vars_[stmt.target.name] = vtype
                else:
                    kind = "int"
                    lh = None
                    if isinstance(stmt.value, ast.Call) and stmt.value.name in AGGREGATIONS:
                        kind = stmt.value.name
                        if kind == "lhist":
                            lh = self._lhist_params(stmt.value)
                    elif vtype.kind in ("str", "buf"):
                        kind = "str"
                    self._declare_map(stmt.target, kind, vtype, vars_, lh)
            elif isinstance(stmt, ast.ExprStmt) and isinstance(stmt.expr, ast.IncDec) \
                    and isinstance(stmt.expr.target, ast.Map):
                self._declare_map(stmt.expr.target, "int", INT, vars_, None)
            elif isinstance(stmt, ast.If):
                self._infer_stmts(stmt.then, vars_)
                self._infer_stmts(stmt.other, vars_)
            elif isinstance(stmt, (ast.Unroll, ast.While)):
                self._infer_stmts(stmt.body, vars_)

    def _lhist_params(self, call: ast.Call) -> tuple[int, int, int]:
        if len(call.args) != 4 or not all(isinstance(a, ast.Integer) for a in call.args[1:]):
            raise self.error("lhist() needs (value, min, max, step) with constant min, max, "
                             "step", call)
        lo, hi, step = (a.value for a in call.args[1:])
        if step <= 0 or hi <= lo:
            raise self.error("lhist(): max must be above min and step positive", call)
        if (hi - lo) // step > 1000:
            raise self.error("lhist(): too many buckets (at most 1000)", call)
        return lo, hi, step

    def _declare_map(self, target: ast.Map, kind: str, vtype: SType, vars_, lh) -> None:
        key_types = [self._static_type(k, vars_) for k in target.keys]
        for k, t in zip(target.keys, key_types):
            if t.kind not in ("int", "str", "buf") or t.rec:
                raise self.error(f"map key of type {t} is not supported", k)
        if vtype.rec:
            raise self.error(f"a map cannot hold a {vtype}: store one of its members",
                             target)
        info = self.maps.get(target.name)
        if info is None:
            self.maps[target.name] = MapInfo(target.name, self._next_map_index, key_types, kind,
                                             vtype if kind in ("str", "int") else INT, lh)
            self._next_map_index += 1
            return
        if [t.kind for t in info.key_types] != [t.kind for t in key_types]:
            raise self.error(f"@{target.name} is used with different key types "
                             f"({', '.join(map(str, info.key_types)) or 'none'} and "
                             f"{', '.join(map(str, key_types)) or 'none'})", target)
        if info.value != kind:
            raise self.error(f"@{target.name} holds {info.value} values; cannot store {kind}",
                             target)

    def _static_type(self, expr: ast.Expr, vars_) -> SType:
        """The type of an expression without emitting code (for the pre-pass)."""
        if isinstance(expr, ast.String):
            return SType("str", STRLEN)
        if isinstance(expr, ast.Builtin):
            if expr.name == "comm":
                return SType("str", COMM_LEN)
            if expr.name in ("probe", "func"):
                return SType("str", STRLEN)
            if expr.name in _STACK_TYPES:
                return _STACK_TYPES[expr.name]
            if expr.name == "curtask":
                return self._curtask_type(expr)
            return UINT if expr.name in ("pid", "tid", "uid", "gid", "nsecs", "cpu",
                                         "elapsed", "rand", *_HELPER_BUILTINS) else INT
        if isinstance(expr, ast.Variable):
            return vars_.get(expr.name, INT)
        if isinstance(expr, ast.Call):
            if expr.name == "str":
                return SType("str", STRLEN)
            if expr.name == "ntop":
                return _STACK_TYPES["inet"]
            if expr.name in _STACK_TYPES:
                return SType(**{**_STACK_TYPES[expr.name].__dict__, "frames":
                                _frames_arg(expr)}) if expr.name in ("kstack", "ustack") \
                    else _STACK_TYPES[expr.name]
            return INT
        if isinstance(expr, ast.Ternary):
            return self._static_type(expr.then, vars_)
        if isinstance(expr, ast.Map):
            info = self.maps.get(expr.name)
            return info.value_type if info else INT
        if isinstance(expr, ast.FieldAccess):
            if not (isinstance(expr.expr, ast.Builtin) and expr.expr.name == "args"):
                return self._member(self._static_type(expr.expr, vars_), expr)[2]
            fld = self._maybe_tp_field(expr)
            if fld is not None and fld.array_len and "char" in fld.ctype:
                return SType("str", fld.array_len)
            if fld is not None and fld.size == 8:
                from . import kerneltypes
                target = kerneltypes.pointer_to(fld.ctype)
                if target:
                    return kerneltypes.pointer_type(target)
            return INT
        if isinstance(expr, ast.Cast) and expr.type_name.startswith(("struct ", "union ")):
            return self._kernel_cast_type(expr)
        if isinstance(expr, ast.Index):
            base = self._static_type(expr.expr, vars_)
            if base.kind == "str":
                return SType("int", signed=False, width=1)
            return self._index_element(expr, base)[2]
        return INT

    def _maybe_tp_field(self, expr: ast.FieldAccess) -> TracepointField | None:
        if isinstance(expr.expr, ast.Builtin) and expr.expr.name == "args" and self._tp_fields:
            for fields in self._tp_fields.values():
                for f in fields:
                    if f.name == expr.field:
                        return f
        return None

    # --- code emission ---------------------------------------------------------------------
    def _emit_probe(self, name: str, probe: ast.Probe, ap: ast.AttachPoint, section: str):
        fn = ir.Function(self.module, ir.FunctionType(i64, [i8p]), name=name)
        fn.section = section
        fn.args[0].name = "ctx"
        self._di_sp = self.module.add_debug_info("DISubprogram", {
            "name": name, "scope": self._di_file, "file": self._di_file, "line": probe.line,
            "type": self._di_fn_type, "unit": self._di_cu,
            "spFlags": ir.DIToken("DISPFlagDefinition"), "flags": ir.DIToken("DIFlagPrototyped"),
        }, is_distinct=True)
        # the kernel wants BTF parameters named: "ctx" as a DILocalVariable in the
        # subprogram's retainedNodes (a cycle llvmlite can only close after the fact)
        ctx_var = self.module.add_debug_info("DILocalVariable", {
            "name": "ctx", "arg": 1, "scope": self._di_sp, "file": self._di_file,
            "line": probe.line, "type": self._di_void_p})
        self.retained.append((self._di_sp.get_reference(), ctx_var.get_reference()))
        fn.set_metadata("dbg", self._di_sp)
        self.fn = fn
        self.ap = ap
        self.probe = probe
        entry = fn.append_basic_block("entry")
        self.entry_builder = ir.IRBuilder(entry)
        body = fn.append_basic_block("body")
        self.b = ir.IRBuilder(body)
        self.scope = _Scope()
        self._pool_free: dict[str, list] = {}
        self._pool_used: list = []
        self.loop_stack: list[tuple[ir.Block, ir.Block]] = []
        self.exit_block = fn.append_basic_block("exit")
        self._locate(probe)
        if probe.predicate is not None:
            self._locate(probe.predicate)
            cond = self._truth(self._expr(probe.predicate)[0])
            go = fn.append_basic_block("pred_true")
            self.b.cbranch(cond, go, self.exit_block)
            self.b.position_at_end(go)
            self._release_temps()  # the predicate's strings are dead once it has decided
        self._stmts(probe.body)
        if not self.b.block.is_terminated:
            self.b.branch(self.exit_block)
        self.entry_builder.branch(body)
        done = ir.IRBuilder(self.exit_block)
        done.debug_metadata = self.module.add_debug_info("DILocation", {
            "line": probe.line, "column": probe.col, "scope": self._di_sp})
        done.ret(ir.Constant(i64, 0))

    def _alloca(self, ty: ir.Type, name: str = "", *, permanent: bool = False) -> ir.Value:
        """A stack slot in the entry block (so loops do not grow the stack).

        Temporaries come from a pool that is handed back after every statement: the BPF
        stack has only 512 bytes, and without the pool every key buffer and event of a probe
        would be live at once."""
        if permanent:
            return self.entry_builder.alloca(ty, name=name)
        key = str(ty)
        free = self._pool_free.setdefault(key, [])
        slot = free.pop() if free else self.entry_builder.alloca(ty, name=name)
        self._pool_used.append((key, slot))
        self._lifetime(self._lifetime_start, slot)
        return slot

    def _release_temps(self) -> None:
        """End of a statement: its temporaries are dead (their slots go back to the pool, and
        LLVM learns they may hold other temporaries of any size)."""
        for key, slot in self._pool_used:
            self._pool_free[key].append(slot)
            self._lifetime(self._lifetime_end, slot)
        self._pool_used.clear()

    def _lifetime(self, marker: ir.Function, slot: ir.Value) -> None:
        if self.b.block.is_terminated:  # after exit(): nothing follows to mark
            return
        size = slot.type.pointee
        nbytes = size.count if isinstance(size, ir.ArrayType) else 8
        self.b.call(marker, [ir.Constant(i64, nbytes), self._ptr(slot)])

    def _zeroed(self, size: int, name: str = "") -> ir.Value:
        buf = self._alloca(ir.ArrayType(i8, size), name)
        self.b.store(ir.Constant(ir.ArrayType(i8, size), None), buf)
        return buf

    def _map_ptr(self, index: int) -> ir.Value:
        return self.b.inttoptr(self.b.call(self._pseudo, [ir.Constant(i64, PSEUDO_MAP_IDX),
                                                          ir.Constant(i64, index)]), i8p)

    def _helper(self, name: str, ret: ir.Type, args: list[ir.Value]) -> ir.Value:
        fnty = ir.FunctionType(ret, [a.type for a in args])
        callee = self.b.inttoptr(ir.Constant(i64, HELPER_IDS[name]), fnty.as_pointer())
        return self.b.call(callee, args)

    def _ptr(self, value: ir.Value) -> ir.Value:
        return self.b.bitcast(value, i8p)

    def _truth(self, value: ir.Value) -> ir.Value:
        if value.type == ir.IntType(1):
            return value
        return self.b.icmp_unsigned("!=", value, ir.Constant(value.type, 0))

    # statements
    def _stmts(self, stmts) -> None:
        for stmt in stmts:
            if self.b.block.is_terminated:
                return
            self._locate(stmt)
            self._stmt(stmt)
            # values that outlive a statement live in $variables (permanent slots) or maps;
            # a condition's temporaries are dead once its branch is taken
            self._release_temps()

    def _stmt(self, stmt) -> None:
        if isinstance(stmt, ast.ExprStmt):
            self._expr(stmt.expr, statement=True)
        elif isinstance(stmt, ast.Assign):
            self._assign(stmt)
        elif isinstance(stmt, ast.If):
            cond = self._truth(self._expr(stmt.cond)[0])
            then_bb = self.fn.append_basic_block("if_then")
            else_bb = self.fn.append_basic_block("if_else")
            done = self.fn.append_basic_block("if_done")
            self.b.cbranch(cond, then_bb, else_bb)
            # the condition's temporaries are dead in both branches: back to the pool now
            # (no marker after the branch), their lifetimes ended at the top of each branch
            condition_temps = [slot for _, slot in self._pool_used]
            self._release_temps()
            for bb, body in ((then_bb, stmt.then), (else_bb, stmt.other)):
                self.b.position_at_end(bb)
                for slot in condition_temps:
                    self._lifetime(self._lifetime_end, slot)
                self._stmts(body)
                if not self.b.block.is_terminated:
                    self.b.branch(done)
            self.b.position_at_end(done)
        elif isinstance(stmt, ast.Unroll):
            for _ in range(stmt.count):
                self._stmts(stmt.body)
        elif isinstance(stmt, ast.While):
            head = self.fn.append_basic_block("while_head")
            body = self.fn.append_basic_block("while_body")
            done = self.fn.append_basic_block("while_done")
            self.b.branch(head)
            self.b.position_at_end(head)
            self.b.cbranch(self._truth(self._expr(stmt.cond)[0]), body, done)
            self.b.position_at_end(body)
            self.loop_stack.append((head, done))
            self._stmts(stmt.body)
            self.loop_stack.pop()
            if not self.b.block.is_terminated:
                self.b.branch(head)
            self.b.position_at_end(done)
        elif isinstance(stmt, ast.Jump):
            if stmt.kind == "return":
                self.b.branch(self.exit_block)
            else:
                if not self.loop_stack:
                    raise self.error(f"'{stmt.kind}' outside a while loop", stmt)
                head, done = self.loop_stack[-1]
                self.b.branch(done if stmt.kind == "break" else head)
        else:  # pragma: no cover - the parser builds only the kinds above
            raise self.error(f"unsupported statement {type(stmt).__name__}", stmt)

    def _assign(self, stmt: ast.Assign) -> None:
        target = stmt.target
        if isinstance(target, ast.Variable):
            if stmt.op == "=":
                value, vtype = self._expr(stmt.value)
                self._set_var(target, value, vtype)
            else:
                cur, ctype = self._var(target)
                rhs, _ = self._expr(stmt.value)
                self._set_var(target, self._arith(stmt.op[:-1], cur, rhs, stmt), ctype)
            return
        info = self.maps[target.name]
        if info.value in AGGREGATIONS:
            if stmt.op != "=":
                raise self.error(f"cannot use '{stmt.op}' with an aggregation", stmt)
            self._aggregate(info, target, stmt.value)
            return
        if stmt.op == "=":
            value, vtype = self._expr(stmt.value)
            self._map_store(info, target, value, vtype)
        else:
            op = stmt.op[:-1]
            rhs, _ = self._expr(stmt.value)
            if op in ("+", "-"):
                delta = rhs if op == "+" else self.b.neg(rhs)
                self._map_atomic_add(info, target, delta)
            else:
                cur, _ = self._map_load(info, target)
                self._map_store(info, target, self._arith(op, cur, rhs, stmt), INT)

    def _set_var(self, target: ast.Variable, value: ir.Value, vtype: SType) -> None:
        slot = self.scope.vars.get(target.name)
        if slot is None or slot[1] != vtype:
            if slot is not None and slot[1].kind != vtype.kind:
                raise self.error(f"${target.name} holds {slot[1]}; cannot assign {vtype}",
                                 target)
            ty = i64 if vtype.kind == "int" else ir.ArrayType(i8, vtype.size)
            slot = (self._alloca(ty, target.name, permanent=True), vtype)
            self.scope.vars[target.name] = slot
        if vtype.kind == "int":
            self.b.store(value, slot[0])
        else:
            self._memcpy(slot[0], value, vtype.size)

    def _var(self, node: ast.Variable) -> tuple[ir.Value, SType]:
        if node.name.isdigit():
            raise self.error(f"positional parameter ${node.name} was not given", node)
        slot = self.scope.vars.get(node.name)
        if slot is None:
            raise self.error(f"variable ${node.name} is used before it is assigned", node)
        if slot[1].kind == "int":
            return self.b.load(slot[0]), slot[1]
        return slot[0], slot[1]

    def _memcpy(self, dst: ir.Value, src: ir.Value, size: int) -> None:
        d = self._ptr(dst)
        s = self._ptr(src)
        off = 0
        while off < size:
            width = 8 if size - off >= 8 else (4 if size - off >= 4 else 1)
            ity = ir.IntType(width * 8)
            sp = self.b.bitcast(self.b.gep(s, [ir.Constant(i64, off)]), ity.as_pointer())
            dp = self.b.bitcast(self.b.gep(d, [ir.Constant(i64, off)]), ity.as_pointer())
            self.b.store(self.b.load(sp, align=1), dp, align=1)
            off += width

    # maps
    def _map_key(self, info: MapInfo, node: ast.Map, bucket: ir.Value | None = None):
        size = info.key_size
        # whole words: a 4-byte array index must not share a word LLVM may merge stores into
        key = self._zeroed((size + 7) & ~7, f"key_{info.name}")
        off = 0
        if not node.keys:
            off = 8  # scalar maps use one zero u64 key
        for expr, ktype in zip(node.keys, info.key_types):
            if isinstance(expr, ast.Builtin) and expr.name == "comm" and ktype.kind == "str":
                # straight into the key (the helper pads with NULs): no buffer, no copy
                dst = self.b.gep(self._ptr(key), [ir.Constant(i64, off)])
                self._helper("bpf_get_current_comm", i64, [
                    dst, ir.Constant(i32, min(ktype.size, COMM_LEN))])
                off += ktype.size
                continue
            value, vtype = self._expr(expr)
            if vtype.kind != ktype.kind:
                raise self.error(f"@{info.name} key must be {ktype}, not {vtype}", expr)
            dst = self.b.gep(self._ptr(key), [ir.Constant(i64, off)])
            if ktype.kind == "int":
                self.b.store(value, self.b.bitcast(dst, i64.as_pointer()), align=1)
            else:
                self._memcpy(dst, value, min(ktype.size, vtype.size))
            off += ktype.size
        if bucket is not None:
            dst = self.b.gep(self._ptr(key), [ir.Constant(i64, off)])
            self.b.store(bucket, self.b.bitcast(dst, i64.as_pointer()), align=1)
        return key

    def _lookup(self, info: MapInfo, key: ir.Value) -> ir.Value:
        return self._helper("bpf_map_lookup_elem", i8p, [self._map_ptr(info.index),
                                                         self._ptr(key)])

    def _update(self, info: MapInfo, key: ir.Value, value: ir.Value, flags: int = 0):
        return self._helper("bpf_map_update_elem", i64, [self._map_ptr(info.index),
                                                         self._ptr(key), self._ptr(value),
                                                         ir.Constant(i64, flags)])

    def _map_store(self, info: MapInfo, node: ast.Map, value: ir.Value, vtype: SType):
        key = self._map_key(info, node)
        if info.value == "str":
            if vtype.kind not in ("str", "buf"):
                raise self.error(f"@{info.name} holds {info.value_type}", node)
            buf = self._zeroed(info.value_size, "strval")
            self._memcpy(buf, value, min(info.value_size, vtype.size))
            self._update(info, key, buf)
            return
        if vtype.kind != "int":
            raise self.error(f"@{info.name} holds integers, not {vtype}", node)
        slot = self._alloca(i64, "val")
        self.b.store(value, slot)
        self._update(info, key, slot)

    def _map_load(self, info: MapInfo, node: ast.Map) -> tuple[ir.Value, SType]:
        key = self._map_key(info, node)
        ptr = self._lookup(info, key)
        if info.value == "str":
            out = self._zeroed(info.value_size, "strread")
            found = self.fn.append_basic_block("found")
            done = self.fn.append_basic_block("done")
            self.b.cbranch(self.b.icmp_unsigned("!=", ptr, ir.Constant(i8p, None)), found, done)
            self.b.position_at_end(found)
            self._memcpy(out, ptr, info.value_size)
            self.b.branch(done)
            self.b.position_at_end(done)
            return out, info.value_type
        result = self._alloca(i64, "mapval")
        self.b.store(ir.Constant(i64, 0), result)
        found = self.fn.append_basic_block("found")
        done = self.fn.append_basic_block("done")
        self.b.cbranch(self.b.icmp_unsigned("!=", ptr, ir.Constant(i8p, None)), found, done)
        self.b.position_at_end(found)
        if info.value in ("avg",):
            cnt = self.b.load(self.b.bitcast(ptr, i64.as_pointer()))
            total = self.b.load(self.b.bitcast(self.b.gep(ptr, [ir.Constant(i64, 8)]),
                                               i64.as_pointer()))
            nz = self.b.select(self.b.icmp_unsigned("==", cnt, ir.Constant(i64, 0)),
                               ir.Constant(i64, 1), cnt)
            self.b.store(self.b.udiv(total, nz), result)
        else:
            self.b.store(self.b.load(self.b.bitcast(ptr, i64.as_pointer())), result)
        self.b.branch(done)
        self.b.position_at_end(done)
        return self.b.load(result), INT

    def _found(self, ptr: ir.Value, name: str = "found"):
        """Branch on a lookup's result: (found block, missing block, done block); the
        builder is left in the found block."""
        found = self.fn.append_basic_block(name)
        missing = self.fn.append_basic_block("missing")
        done = self.fn.append_basic_block("done")
        self.b.cbranch(self.b.icmp_unsigned("!=", ptr, ir.Constant(i8p, None)), found, missing)
        self.b.position_at_end(found)
        return found, missing, done

    def _map_atomic_add(self, info: MapInfo, node: ast.Map, delta: ir.Value,
                        bucket: ir.Value | None = None) -> None:
        """``*value += delta`` in place, inserting ``delta`` on a miss. A per-CPU map (every
        aggregation, as bpftrace keeps them) is only ever written by its own CPU: a plain
        load/add/store, no lock prefix; user space sums the CPUs. A shared hash map (``@x++``,
        ``@x += n``) takes an atomic add."""
        key = self._map_key(info, node, bucket)
        ptr = self._lookup(info, key)
        _, missing, done = self._found(ptr)
        p64 = self.b.bitcast(ptr, i64.as_pointer())
        if info.map_type == "hash":
            self.b.atomic_rmw("add", p64, delta, "monotonic")
        else:
            self.b.store(self.b.add(self.b.load(p64), delta), p64)
        self.b.branch(done)
        self.b.position_at_end(missing)
        if not info.is_array:  # an array's one slot always exists
            self._update_new(info, key, [delta])
        self.b.branch(done)
        self.b.position_at_end(done)

    def _update_new(self, info: MapInfo, key: ir.Value, values: list[ir.Value]) -> None:
        """Insert a missing element. Per-CPU maps: BPF_ANY, which writes this CPU's slot only
        (another CPU's insert in between zero-filled it: nothing is lost); a shared hash map:
        BPF_NOEXIST, so a racing insert wins over a stale one."""
        slot = self._alloca(ir.ArrayType(i64, len(values)), "init")
        for i, v in enumerate(values):
            self.b.store(v, self.b.gep(slot, [ir.Constant(i32, 0), ir.Constant(i32, i)]))
        self._update(info, key, slot, 1 if info.map_type == "hash" else 0)

    def _aggregate(self, info: MapInfo, node: ast.Map, call: ast.Call) -> None:
        if not isinstance(call, ast.Call) or call.name != info.value:
            raise self.error(f"@{info.name} is a {info.value}() map", node)
        name = call.name
        want = {"count": 0, "sum": 1, "avg": 1, "min": 1, "max": 1, "stats": 1, "hist": 1,
                "lhist": 4}[name]
        if len(call.args) != want:
            raise self.error(f"{name}() takes {want} argument{'s' * (want != 1)}", call)
        if name == "count":
            self._map_atomic_add(info, node, ir.Constant(i64, 1))
            return
        value, vtype = self._expr(call.args[0])
        if vtype.kind != "int":
            raise self.error(f"{name}() needs an integer, not {vtype}", call.args[0])
        one = ir.Constant(i64, 1)
        if name == "sum":
            self._map_atomic_add(info, node, value)
        elif name in ("avg", "stats"):
            # this CPU's (count, total): plain adds, the map is per-CPU
            key = self._map_key(info, node)
            ptr = self._lookup(info, key)
            _, missing, done = self._found(ptr)
            cnt_p = self.b.bitcast(ptr, i64.as_pointer())
            tot_p = self.b.bitcast(self.b.gep(ptr, [ir.Constant(i64, 8)]), i64.as_pointer())
            self.b.store(self.b.add(self.b.load(cnt_p), one), cnt_p)
            self.b.store(self.b.add(self.b.load(tot_p), value), tot_p)
            self.b.branch(done)
            self.b.position_at_end(missing)
            self._update_new(info, key, [one, value])
            self.b.branch(done)
            self.b.position_at_end(done)
        elif name in ("min", "max"):
            # this CPU's (value, 1): the 1 tells user space the CPU has a value (a slot
            # another CPU's insert zero-filled has 0 there and takes no part in the merge)
            key = self._map_key(info, node)
            ptr = self._lookup(info, key)
            _, missing, done = self._found(ptr)
            better = self.fn.append_basic_block("better")
            p64 = self.b.bitcast(ptr, i64.as_pointer())
            seen_p = self.b.bitcast(self.b.gep(ptr, [ir.Constant(i64, 8)]), i64.as_pointer())
            cmp = self.b.icmp_signed("<" if name == "min" else ">", value, self.b.load(p64))
            fresh = self.b.icmp_unsigned("==", self.b.load(seen_p), ir.Constant(i64, 0))
            self.b.cbranch(self.b.or_(cmp, fresh), better, done)
            self.b.position_at_end(better)
            self.b.store(value, p64)
            self.b.store(one, seen_p)
            self.b.branch(done)
            self.b.position_at_end(missing)
            self._update_new(info, key, [value, one])
            self.b.branch(done)
            self.b.position_at_end(done)
        elif name == "hist":
            self._map_atomic_add(info, node, ir.Constant(i64, 1), self._log2_bucket(value))
        elif name == "lhist":
            lo, hi, step = info.lhist
            self._map_atomic_add(info, node, ir.Constant(i64, 1),
                                 self._linear_bucket(value, lo, hi, step))

    def _log2_bucket(self, value: ir.Value) -> ir.Value:
        """bpftrace's hist() bucket: 0 for negatives, 1 for 0, then 2 + floor(log2(v))."""
        b = self.b
        result = self._alloca(i64, "bucket")
        neg = b.icmp_signed("<", value, ir.Constant(i64, 0))
        zero = b.icmp_unsigned("==", value, ir.Constant(i64, 0))
        b.store(b.select(neg, ir.Constant(i64, 0), ir.Constant(i64, 1)), result)
        pos_bb = self.fn.append_basic_block("log2")
        done = self.fn.append_basic_block("log2_done")
        b.cbranch(b.or_(neg, zero), done, pos_bb)
        b.position_at_end(pos_bb)
        # branch-free floor(log2(v)) by halving steps, as bpftrace does
        v = value
        acc = ir.Constant(i64, 0)
        for shift in (32, 16, 8, 4, 2, 1):
            big = b.icmp_unsigned(">=", v, ir.Constant(i64, 1 << shift))
            s = b.select(big, ir.Constant(i64, shift), ir.Constant(i64, 0))
            v = b.lshr(v, s)
            acc = b.add(acc, s)
        b.store(b.add(acc, ir.Constant(i64, 2)), result)
        b.branch(done)
        b.position_at_end(done)
        return b.load(result)

    def _linear_bucket(self, value: ir.Value, lo: int, hi: int, step: int) -> ir.Value:
        """lhist bucket: 0 below min, 1 + (v - min) / step inside, last bucket at/above max."""
        b = self.b
        nbuckets = (hi - lo) // step
        below = b.icmp_signed("<", value, ir.Constant(i64, lo))
        above = b.icmp_signed(">=", value, ir.Constant(i64, hi))
        inside = b.add(b.udiv(b.sub(value, ir.Constant(i64, lo)), ir.Constant(i64, step)),
                       ir.Constant(i64, 1))
        r = b.select(above, ir.Constant(i64, nbuckets + 1), inside)
        return b.select(below, ir.Constant(i64, 0), r)

    # expressions
    def _expr(self, expr: ast.Expr, statement: bool = False) -> tuple[ir.Value, SType]:
        method = getattr(self, "_e_" + type(expr).__name__)
        if statement and isinstance(expr, (ast.Call, ast.IncDec)):
            return method(expr, True)
        return method(expr)

    def _e_Integer(self, e: ast.Integer):
        return ir.Constant(i64, e.value & 0xFFFF_FFFF_FFFF_FFFF), INT

    def _e_String(self, e: ast.String):
        buf = self._zeroed(STRLEN, "str")
        self._store_literal(buf, self._literal(e))
        return buf, SType("str", STRLEN)

    def _literal(self, e: ast.String) -> bytes:
        data = e.value.encode()
        if len(data) > STRLEN - 1:
            raise self.error(f"string is too long (over {STRLEN} bytes with its NUL)", e)
        return data

    def _store_literal(self, dst: ir.Value, data: bytes) -> None:
        """Write a string literal's bytes (8 at a time) into zeroed memory."""
        for i in range(0, len(data), 8):
            chunk = data[i:i + 8].ljust(8, b"\0")
            p = self.b.bitcast(self.b.gep(self._ptr(dst), [ir.Constant(i64, i)]),
                               i64.as_pointer())
            self.b.store(ir.Constant(i64, int.from_bytes(chunk, "little")), p, align=1)

    def _e_Identifier(self, e: ast.Identifier):
        from . import kerneltypes

        try:
            value, vtype = kerneltypes.constant(e.name, self.script.macros, self.script.includes)
        except kerneltypes.KernelTypeError as exc:
            raise self.error(str(exc), e) from None
        return ir.Constant(i64, value & 0xFFFF_FFFF_FFFF_FFFF), vtype

    def _e_Variable(self, e: ast.Variable):
        return self._var(e)

    def _e_Map(self, e: ast.Map):
        info = self.maps.get(e.name)
        if info is None:
            raise self.error(f"map @{e.name} is read but never assigned", e)
        if info.value in ("hist", "lhist", "stats"):
            raise self.error(f"@{e.name} is a {info.value}() map and cannot be read as a value",
                             e)
        return self._map_load(info, e)

    def _e_Tuple(self, e: ast.Tuple):
        raise self.error("tuples are not supported yet", e)

    def _e_Cast(self, e: ast.Cast):
        value, vtype = self._expr(e.expr)
        if vtype.kind != "int":
            raise self.error(f"cannot cast {vtype} to {e.type_name}", e)
        if e.type_name.startswith(("struct ", "union ")):
            return value, self._kernel_cast_type(e)
        bits = {"int8": 8, "uint8": 8, "char": 8, "int16": 16, "uint16": 16, "short": 16,
                "int32": 32, "uint32": 32, "int": 32}.get(e.type_name.rstrip("*"), 64)
        signed = not e.type_name.startswith("u")
        if bits < 64:
            t = self.b.trunc(value, ir.IntType(bits))
            value = self.b.sext(t, i64) if signed else self.b.zext(t, i64)
        return value, SType("int", signed=signed, width=bits // 8)

    def _kernel_cast_type(self, e: ast.Cast) -> SType:
        """``(struct NAME *)``: a pointer to the kernel's struct (or union) NAME."""
        from . import kerneltypes

        kind, _, name = e.type_name.partition(" ")
        stars = len(name) - len(name.rstrip("*"))
        if stars != 1:
            raise self.error(f"cast to a pointer to the {kind}, e.g. ({kind} "
                             f"{name.rstrip('*')} *)", e)
        try:
            return kerneltypes.pointer_type(kerneltypes.record_id(kind, name.rstrip("*")))
        except kerneltypes.KernelTypeError as exc:
            raise self.error(str(exc), e) from None

    def _e_Unary(self, e: ast.Unary):
        value, vtype = self._expr(e.operand)
        if vtype.kind != "int":
            raise self.error(f"'{e.op}' needs an integer, not {vtype}", e)
        if e.op == "!":
            return self.b.zext(self.b.icmp_unsigned("==", value, ir.Constant(i64, 0)), i64), INT
        if e.op == "~":
            return self.b.not_(value), vtype
        if e.op == "-":
            return self.b.neg(value), INT
        if e.op == "*":
            slot = self._alloca(i64, "deref")
            self.b.store(ir.Constant(i64, 0), slot)
            self._helper("bpf_probe_read_kernel", i64, [self._ptr(slot), ir.Constant(i32, 8),
                                                        self.b.inttoptr(value, i8p)])
            return self.b.load(slot), INT
        raise self.error(f"unary '{e.op}' is not supported", e)

    def _e_IncDec(self, e: ast.IncDec, statement: bool = False):
        delta = ir.Constant(i64, 1 if e.op == "++" else -1)
        if isinstance(e.target, ast.Map):
            info = self.maps.get(e.target.name)
            if info is None:
                info = self.maps[e.target.name]
            if statement:
                self._map_atomic_add(info, e.target, delta)
                return ir.Constant(i64, 0), INT
            old, _ = self._map_load(info, e.target)
            self._map_atomic_add(info, e.target, delta)
            return (self.b.add(old, delta) if e.prefix else old), INT
        old, vtype = self._var(e.target)
        new = self.b.add(old, delta)
        self._set_var(e.target, new, vtype)
        return (new if e.prefix else old), vtype

    def _arith(self, op: str, left: ir.Value, right: ir.Value, node, signed=False) -> ir.Value:
        b = self.b
        if op in ("/", "%"):
            # division by zero yields 0 (BPF semantics); the verifier needs no check here
            zero = b.icmp_unsigned("==", right, ir.Constant(i64, 0))
            safe = b.select(zero, ir.Constant(i64, 1), right)
            q = b.udiv(left, safe) if op == "/" else b.urem(left, safe)
            return b.select(zero, ir.Constant(i64, 0), q)
        table = {"+": b.add, "-": b.sub, "*": b.mul, "&": b.and_, "|": b.or_, "^": b.xor,
                 "<<": b.shl, ">>": b.lshr}
        if op not in table:
            raise self.error(f"operator '{op}' is not supported", node)
        return table[op](left, right)

    def _e_Binary(self, e: ast.Binary):
        if e.op in ("&&", "||"):
            result = self._alloca(i64, "logic")
            left = self._truth(self._expr(e.left)[0])
            rhs_bb = self.fn.append_basic_block("logic_rhs")
            done = self.fn.append_basic_block("logic_done")
            self.b.store(self.b.zext(left, i64), result)
            if e.op == "&&":
                self.b.cbranch(left, rhs_bb, done)
            else:
                self.b.cbranch(left, done, rhs_bb)
            self.b.position_at_end(rhs_bb)
            right = self._truth(self._expr(e.right)[0])
            self.b.store(self.b.zext(right, i64), result)
            self.b.branch(done)
            self.b.position_at_end(done)
            return self.b.load(result), INT
        left, lt = self._expr(e.left)
        right, rt = self._expr(e.right)
        if e.op in ("==", "!=") and lt.kind == "str" and rt.kind == "str":
            return self._strcmp(left, lt, right, rt, e.op), INT
        if lt.kind != "int" or rt.kind != "int":
            raise self.error(f"operator '{e.op}' needs integers (got {lt} and {rt})", e)
        if e.op in ("==", "!=", "<", "<=", ">", ">="):
            signed = lt.signed and rt.signed
            cmp = (self.b.icmp_signed if signed else self.b.icmp_unsigned)(e.op, left, right)
            return self.b.zext(cmp, i64), INT
        return self._arith(e.op, left, right, e), SType("int", signed=lt.signed and rt.signed)

    def _strcmp(self, left, lt: SType, right, rt: SType, op: str,
                limit: int | None = None) -> ir.Value:
        """Byte-wise comparison up to the first NUL (and at most ``limit`` bytes), unrolled
        (no loops for the verifier)."""
        n = min(lt.size, rt.size, limit if limit is not None else lt.size)
        b = self.b
        equal = self._alloca(i64, "streq")
        b.store(ir.Constant(i64, 1), equal)
        done = self.fn.append_basic_block("strcmp_done")
        lp, rp = self._ptr(left), self._ptr(right)
        for i in range(n):
            lc = b.load(b.gep(lp, [ir.Constant(i64, i)]))
            rc = b.load(b.gep(rp, [ir.Constant(i64, i)]))
            differ = self.fn.append_basic_block("strcmp_differ")
            same = self.fn.append_basic_block("strcmp_same")
            b.cbranch(b.icmp_unsigned("!=", lc, rc), differ, same)
            b.position_at_end(differ)
            b.store(ir.Constant(i64, 0), equal)
            b.branch(done)
            b.position_at_end(same)
            nxt = self.fn.append_basic_block("strcmp_next")
            b.cbranch(b.icmp_unsigned("==", lc, ir.Constant(i8, 0)), done, nxt)
            b.position_at_end(nxt)
        b.branch(done)
        b.position_at_end(done)
        eq = b.load(equal)
        return eq if op == "==" else b.xor(eq, ir.Constant(i64, 1))

    def _e_Ternary(self, e: ast.Ternary):
        cond = self._truth(self._expr(e.cond)[0])
        then_bb = self.fn.append_basic_block("tern_then")
        else_bb = self.fn.append_basic_block("tern_else")
        done = self.fn.append_basic_block("tern_done")
        self.b.cbranch(cond, then_bb, else_bb)
        self.b.position_at_end(then_bb)
        tv, tt = self._expr(e.then)
        if tt.kind == "int":
            slot = self._alloca(i64, "tern")
        else:
            slot = self._zeroed(tt.size, "tern")
        self._store_any(slot, tv, tt)
        self.b.branch(done)
        self.b.position_at_end(else_bb)
        ev, et = self._expr(e.other)
        if et.kind != tt.kind:
            raise self.error(f"both branches of '?:' must have one type ({tt} and {et})", e)
        self._store_any(slot, ev, SType(et.kind, min(et.size, tt.size)))
        self.b.branch(done)
        self.b.position_at_end(done)
        return (self.b.load(slot) if tt.kind == "int" else slot), tt

    def _store_any(self, slot, value, vtype: SType) -> None:
        if vtype.kind == "int":
            self.b.store(value, slot)
        else:
            self._memcpy(slot, value, vtype.size)

    def _ctx_load(self, offset: int, size: int, signed: bool) -> ir.Value:
        ity = ir.IntType(size * 8)
        p = self.b.bitcast(self.b.gep(self.fn.args[0], [ir.Constant(i64, offset)]),
                           ity.as_pointer())
        v = self.b.load(p)
        if size < 8:
            v = self.b.sext(v, i64) if signed else self.b.zext(v, i64)
        return v

    def _e_Builtin(self, e: ast.Builtin):
        name = e.name
        b = self.b
        if name in ("pid", "tid"):
            v = self._helper("bpf_get_current_pid_tgid", i64, [])
            return (b.lshr(v, ir.Constant(i64, 32)) if name == "pid"
                    else b.and_(v, ir.Constant(i64, 0xFFFFFFFF))), UINT
        if name in ("uid", "gid"):
            v = self._helper("bpf_get_current_uid_gid", i64, [])
            return (b.and_(v, ir.Constant(i64, 0xFFFFFFFF)) if name == "uid"
                    else b.lshr(v, ir.Constant(i64, 32))), UINT
        if name == "nsecs":
            return self._helper("bpf_ktime_get_ns", i64, []), UINT
        if name == "elapsed":
            self.uses_elapsed = True
            now = self._helper("bpf_ktime_get_ns", i64, [])
            key = self._alloca(i32, "k0")
            b.store(ir.Constant(i32, 0), key)
            ptr = self._helper("bpf_map_lookup_elem", i8p, [self._map_ptr(self.start_index),
                                                            self._ptr(key)])
            start = self._alloca(i64, "start")
            b.store(now, start)
            ok = self.fn.append_basic_block("have_start")
            done = self.fn.append_basic_block("start_done")
            b.cbranch(b.icmp_unsigned("!=", ptr, ir.Constant(i8p, None)), ok, done)
            b.position_at_end(ok)
            b.store(b.load(b.bitcast(ptr, i64.as_pointer())), start)
            b.branch(done)
            b.position_at_end(done)
            return b.sub(now, b.load(start)), UINT
        if name == "cpu":
            return b.zext(self._helper("bpf_get_smp_processor_id", i32, []), i64), UINT
        if name == "curtask":
            return self._helper("bpf_get_current_task", i64, []), self._curtask_type(e)
        if name in _HELPER_BUILTINS:  # numaid, cgroup, jiffies: one helper call each
            return self._helper(_HELPER_BUILTINS[name], i64, []), UINT
        if name == "username":  # the uid; user space prints its name
            v = self._helper("bpf_get_current_uid_gid", i64, [])
            return b.and_(v, ir.Constant(i64, 0xFFFFFFFF)), _STACK_TYPES["username"]
        if name == "rand":
            return b.zext(self._helper("bpf_get_prandom_u32", i32, []), i64), UINT
        if name == "comm":
            buf = self._zeroed(COMM_LEN, "comm")
            self._helper("bpf_get_current_comm", i64, [self._ptr(buf), ir.Constant(i32,
                                                                                    COMM_LEN)])
            return buf, SType("str", COMM_LEN)
        if name in ("probe", "func"):
            text = self.ap.raw if name == "probe" else (self.ap.func or self.ap.raw)
            return self._e_String(ast.String(e.line, e.col, text))
        if name == "retval" and self.ap.provider == "kretfunc":
            nargs = len((self._tp_fields or {}).get(("kfunc", self.ap.func), []))
            return self._ctx_load(8 * nargs, 8, True), INT
        if name.startswith("arg") and name[3:].isdigit() or name == "retval":
            if self.ap.provider not in ("kprobe", "kretprobe", "uprobe", "uretprobe"):
                raise self.error(f"{name} is only available in kprobe/uprobe probes "
                                 f"(this is {self.ap.provider})", e)
            if name == "retval":
                return self._ctx_load(PT_REGS_RET, 8, True), INT
            n = int(name[3:])
            if n >= len(PT_REGS_ARGS):
                raise self.error(f"{name}: x86_64 passes only 6 arguments in registers", e)
            return self._ctx_load(PT_REGS_ARGS[n], 8, True), INT
        if name in ("kstack", "ustack"):
            return self._stack(name, 0)
        if name == "args":
            raise self.error("use a field of args, e.g. args->filename", e)
        raise self.error(f"builtin '{name}' is not supported yet", e)

    def _tp_field(self, e: ast.FieldAccess) -> TracepointField:
        if self.ap.provider not in ("tracepoint", "kfunc", "kretfunc"):
            raise self.error("args-> is available in tracepoint and kfunc probes", e)
        key = (self.ap.target, self.ap.func)
        for f in (self._tp_fields or {}).get(key, []):
            if f.name == e.field:
                return f
        names = ", ".join(f.name for f in (self._tp_fields or {}).get(key, []))
        where = (f"tracepoint {key[0]}:{key[1]}" if self.ap.provider == "tracepoint"
                 else f"function {key[1]}")
        raise self.error(f"{where} has no field '{e.field}' (fields: {names})", e)

    def _curtask_type(self, e: ast.Node) -> SType:
        from . import kerneltypes

        try:
            return kerneltypes.pointer_type(kerneltypes.record_id("struct", "task_struct"))
        except kerneltypes.KernelTypeError as exc:
            raise self.error(str(exc), e) from None

    def _member(self, base: SType, e: ast.FieldAccess) -> tuple[int, int, SType]:
        """(offset, bytes to read, type) of the kernel struct member ``e.field`` of ``base``."""
        from . import kerneltypes

        if not base.btf:
            raise self.error(f"'{e.field}': field access needs args or a kernel struct "
                             f"pointer, e.g. (struct task_struct *)curtask; this is {base}", e)
        try:
            return kerneltypes.member(base.btf, e.field)
        except kerneltypes.KernelTypeError as exc:
            raise self.error(str(exc), e) from None

    def _kernel_member(self, e: ast.FieldAccess):
        """``ptr->field`` / ``record.field`` on kernel memory: read with bpf_probe_read (a
        struct or union member is addressed, not read)."""
        base, btype = self._expr(e.expr)
        offset, size, mtype = self._member(btype, e)
        return self._read_kernel(self.b.add(base, ir.Constant(i64, offset)), size, mtype,
                                 e.field)

    def _read_kernel(self, addr: ir.Value, size: int, vtype: SType, name: str):
        """The value of type ``vtype`` at ``addr`` (``size`` bytes, bpf_probe_read); a
        struct or union is its address."""
        if vtype.rec:
            return addr, vtype
        if vtype.kind == "str":
            buf = self._zeroed(size, name)
            self._helper("bpf_probe_read", i64, [self._ptr(buf), ir.Constant(i32, size),
                                                 self.b.inttoptr(addr, i8p)])
            return buf, vtype
        slot = self._alloca(i64, name)
        self.b.store(ir.Constant(i64, 0), slot)
        self._helper("bpf_probe_read", i64, [self._ptr(slot), ir.Constant(i32, size),
                                             self.b.inttoptr(addr, i8p)])
        value = self.b.load(slot)
        if size < 8:
            narrow = self.b.trunc(value, ir.IntType(size * 8))
            value = self.b.sext(narrow, i64) if vtype.signed else self.b.zext(narrow, i64)
        return value, vtype

    def _e_FieldAccess(self, e: ast.FieldAccess):
        if not (isinstance(e.expr, ast.Builtin) and e.expr.name == "args"):
            return self._kernel_member(e)
        f = self._tp_field(e)
        if f.array_len and "char" in f.ctype and not f.ctype.startswith("__data_loc"):
            buf = self._zeroed(f.array_len, f.name)
            self._memcpy(buf, self.b.gep(self.fn.args[0], [ir.Constant(i64, f.offset)]),
                         f.array_len)
            return buf, SType("str", f.array_len)
        if f.size not in (1, 2, 4, 8):
            raise self.error(f"field '{f.name}' ({f.ctype}, {f.size} bytes) is not supported",
                             e)
        signed = f.signed or f.ctype in ("int", "long", "short", "pid_t")
        value = self._ctx_load(f.offset, f.size, signed)
        if f.size != 8:
            return value, SType("int", signed=signed, width=f.size)
        if f.ctype.startswith(("struct ", "union ", "const struct ")):
            from . import kerneltypes
            target = kerneltypes.pointer_to(f.ctype)
            if target:  # "struct __kernel_timespec *": its members through the BTF
                return value, kerneltypes.pointer_type(target)
        return value, SType("int", signed=signed)

    def _index_element(self, e: ast.Index, btype: SType) -> tuple[int, int, SType]:
        """(stride, bytes to read, type) of the element ``e`` selects."""
        from . import kerneltypes

        if btype.btf:
            try:
                found = (kerneltypes.array_element(btype.btf) if btype.rec
                         else kerneltypes.element(btype.btf))
            except kerneltypes.KernelTypeError as exc:
                raise self.error(str(exc), e) from None
            if found is not None:
                return found
        base = e.expr
        if isinstance(base, ast.FieldAccess) and isinstance(base.expr, ast.Builtin) \
                and base.expr.name == "args":
            found = kerneltypes.ctype_element(self._tp_field(base).ctype)
            if found is not None:
                return found
        raise self.error(f"cannot index {btype}: a pointer (args->argv, a kernel pointer) or "
                         "a string with a constant index", e)

    def _e_Index(self, e: ast.Index):
        """``args->argv[1]``, ``$ptr[i]`` (read from memory), ``$str[3]`` (a byte)."""
        base, btype = self._expr(e.expr)
        index, itype = self._expr(e.index)
        if itype.kind != "int":
            raise self.error(f"an index must be an integer, not {itype}", e.index)
        if btype.kind == "str":
            if not isinstance(e.index, ast.Integer) or not 0 <= e.index.value < btype.size:
                raise self.error(f"a string's index must be a constant from 0 to "
                                 f"{btype.size - 1}", e.index)
            byte = self.b.load(self.b.gep(self._ptr(base), [ir.Constant(i64, e.index.value)]))
            return self.b.zext(byte, i64), SType("int", signed=False, width=1)
        stride, size, etype = self._index_element(e, btype)
        if btype.rec and isinstance(e.index, ast.Integer):
            from . import kerneltypes
            count = kerneltypes.array_length(btype.btf)
            if not 0 <= e.index.value < count:
                raise self.error(f"index {e.index.value} is outside {btype} (0 to "
                                 f"{count - 1})", e.index)
        addr = self.b.add(base, self.b.mul(index, ir.Constant(i64, stride)))
        return self._read_kernel(addr, size, etype, "elem")

    # calls
    def _e_Call(self, e: ast.Call, statement: bool = False):
        handler = getattr(self, "_call_" + e.name, None)
        if handler is None:
            if e.name in AGGREGATIONS:
                raise self.error(f"{e.name}() must be assigned to a map, e.g. @x = {e.name}()",
                                 e)
            raise self.error(f"unknown function '{e.name}'", e)
        return handler(e)

    def _stack(self, name: str, frames: int):
        """A stack id from bpf_get_stackid; user stacks carry the pid for symbolisation."""
        self.uses_stacks = True
        flags = 0 if name == "kstack" else BPF_F_USER_STACK
        sid = self._helper("bpf_get_stackid", i64, [self.fn.args[0],
                                                    self._map_ptr(self.stack_index),
                                                    ir.Constant(i64, flags)])
        base = _STACK_TYPES[name]
        stype = SType(base.kind, base.size, False, base.display, frames)
        if name == "kstack":
            return sid, stype
        return self._pair(sid, stype)

    def _pair(self, value: ir.Value, stype: SType):
        """A 16-byte (value, pid) buffer: user addresses mean nothing without their process."""
        buf = self._zeroed(16, stype.display)
        p = self._ptr(buf)
        pid = self.b.lshr(self._helper("bpf_get_current_pid_tgid", i64, []), ir.Constant(i64, 32))
        self.b.store(value, self.b.bitcast(p, i64.as_pointer()))
        self.b.store(pid, self.b.bitcast(self.b.gep(p, [ir.Constant(i64, 8)]), i64.as_pointer()))
        return buf, stype

    def _stack_call(self, e: ast.Call, name: str):
        if len(e.args) > 1 or (e.args and not isinstance(e.args[0], ast.Integer)):
            raise self.error(f"{name}() takes an optional constant number of frames", e)
        frames = e.args[0].value if e.args else 0
        if not 0 <= frames <= MAX_STACK_FRAMES:
            raise self.error(f"{name}(): at most {MAX_STACK_FRAMES} frames", e)
        return self._stack(name, frames)

    def _call_kstack(self, e: ast.Call):
        return self._stack_call(e, "kstack")

    def _call_ustack(self, e: ast.Call):
        return self._stack_call(e, "ustack")

    def _sym_arg(self, e: ast.Call, name: str) -> ir.Value:
        if len(e.args) != 1:
            raise self.error(f"{name}() takes one address", e)
        value, vtype = self._expr(e.args[0])
        if vtype.kind != "int":
            raise self.error(f"{name}() needs an integer address, not {vtype}", e.args[0])
        return value

    def _call_ksym(self, e: ast.Call):
        return self._sym_arg(e, "ksym"), _STACK_TYPES["ksym"]

    def _call_usym(self, e: ast.Call):
        return self._pair(self._sym_arg(e, "usym"), _STACK_TYPES["usym"])

    def _call_strftime(self, e: ast.Call):
        """strftime(format, nsecs): a boot-clock time (nsecs) that user space prints as the
        wall-clock time in ``format`` (``%f``: microseconds), as bpftrace does."""
        if len(e.args) != 2 or not isinstance(e.args[0], ast.String):
            raise self.error("strftime() takes a format string and a time in nanoseconds", e)
        ns, ntype = self._expr(e.args[1])
        if ntype.kind != "int":
            raise self.error(f"strftime() needs nanoseconds, not {ntype}", e.args[1])
        fmt = PrintfFormat(len(self.formats), e.args[0].value, [], EV_TIME)
        self.formats.append(fmt)
        buf = self._zeroed(16, "strftime")
        p = self._ptr(buf)
        self.b.store(ir.Constant(i64, fmt.id), self.b.bitcast(p, i64.as_pointer()))
        self.b.store(ns, self.b.bitcast(self.b.gep(p, [ir.Constant(i64, 8)]),
                                        i64.as_pointer()))
        return buf, _STACK_TYPES["strftime"]

    def _call_strncmp(self, e: ast.Call):
        """strncmp(s1, s2, n): 0 when the strings agree in their first n bytes (or up to a
        common end), else 1 -- bpftrace's answer."""
        if len(e.args) != 3 or not isinstance(e.args[2], ast.Integer) or e.args[2].value < 0:
            raise self.error("strncmp() takes two strings and a constant length", e)
        left, lt = self._expr(e.args[0])
        right, rt = self._expr(e.args[1])
        for arg, t in ((e.args[0], lt), (e.args[1], rt)):
            if t.kind != "str":
                raise self.error(f"strncmp() compares strings, not {t}", arg)
        if e.args[2].value == 0:
            return ir.Constant(i64, 0), INT
        return self._strcmp(left, lt, right, rt, "!=", e.args[2].value), INT

    def _e_SizeOf(self, e: ast.SizeOf):
        """sizeof(TYPE) or sizeof(expression): a constant."""
        return ir.Constant(i64, self._size_of(e)), UINT

    def _size_of(self, e: ast.SizeOf) -> int:
        if e.expr is not None:
            vars_ = {name: slot[1] for name, slot in self.scope.vars.items()}
            t = self._static_type(e.expr, vars_)
            return t.width if t.kind == "int" else t.size
        if e.type_name.startswith(("struct ", "union ")):
            from . import kerneltypes
            kind, _, name = e.type_name.partition(" ")
            try:
                return kerneltypes.record_size(kind, name)
            except kerneltypes.KernelTypeError as exc:
                raise self.error(str(exc), e) from None
        return _TYPE_BYTES.get(e.type_name, 8)

    def _call_cat(self, e: ast.Call):
        """cat(path[, args...]): user space prints the file (the path is printf-formatted)."""
        if not e.args or not isinstance(e.args[0], ast.String):
            raise self.error("cat() needs a file name (a format string) first", e)
        return self._format_event(e, EV_CAT)

    def _call_bswap(self, e: ast.Call):
        """Reverse the bytes of an integer of its C width (a ``__be16`` port: two bytes)."""
        if len(e.args) != 1:
            raise self.error("bswap() takes one integer", e)
        value, vtype = self._expr(e.args[0])
        if vtype.kind != "int":
            raise self.error(f"bswap() needs an integer, not {vtype}", e.args[0])
        width = vtype.width if vtype.width in (1, 2, 4, 8) else 8
        if width == 1:
            return value, SType("int", signed=False, width=1)
        narrow = value if width == 8 else self.b.trunc(value, ir.IntType(width * 8))
        swapped = self.b.bswap(narrow)
        return (swapped if width == 8 else self.b.zext(swapped, i64)), \
            SType("int", signed=False, width=width)

    def _call_ntop(self, e: ast.Call):
        """ntop([af,] addr): an IPv4 (an integer as it lies in memory, or 4 bytes) or IPv6
        (16 bytes) address, printed as inet_ntop prints it; held as (af, 16 address bytes)."""
        if not 1 <= len(e.args) <= 2:
            raise self.error("ntop() takes an address and, first, an optional family", e)
        addr, atype = self._expr(e.args[-1])
        if atype.kind == "int":
            size = 4
        elif atype.kind in ("str", "buf") and atype.size in (4, 16):
            size = atype.size
        else:
            raise self.error(f"ntop() needs an integer or 4 or 16 bytes, not {atype}", e.args[-1])
        if len(e.args) == 2:
            af, ftype = self._expr(e.args[0])
            if ftype.kind != "int":
                raise self.error("ntop()'s family must be an integer (AF_INET, AF_INET6)",
                                 e.args[0])
        else:
            af = ir.Constant(i64, 2 if size == 4 else 10)   # AF_INET, AF_INET6
        buf = self._zeroed(24, "inet")
        p = self._ptr(buf)
        self.b.store(af, self.b.bitcast(p, i64.as_pointer()))
        dst = self.b.gep(p, [ir.Constant(i64, 8)])
        if atype.kind == "int":
            self.b.store(self.b.trunc(addr, i32), self.b.bitcast(dst, i32.as_pointer()),
                         align=1)
        else:
            self._memcpy(dst, addr, size)
        return buf, _STACK_TYPES["inet"]

    def _call_str(self, e: ast.Call):
        if not 1 <= len(e.args) <= 2:
            raise self.error("str() takes a pointer and an optional length", e)
        arg = e.args[0]
        if not self._str_reads(arg):
            return self._expr(arg)   # already a string
        buf = self._zeroed(STRLEN, "strbuf")
        self._str_into(e, buf)
        return buf, SType("str", STRLEN)

    def _str_reads(self, arg: ast.Expr) -> bool:
        """Whether str(arg) reads memory (a pointer, a __data_loc field), as opposed to
        passing a string value through."""
        if isinstance(arg, ast.FieldAccess) and isinstance(arg.expr, ast.Builtin) \
                and arg.expr.name == "args":
            if self._tp_field(arg).ctype.startswith("__data_loc"):
                return True
        vars_ = {name: slot[1] for name, slot in self.scope.vars.items()}
        return self._static_type(arg, vars_).kind not in ("str", "buf")

    def _str_into(self, e: ast.Call, dst: ir.Value) -> None:
        """Read the string str(p[, n]) reads into ``dst`` (STRLEN zeroed bytes): straight into
        a printf event, so a printf of several strings needs no copies of them."""
        arg = e.args[0]
        size: ir.Value = ir.Constant(i32, STRLEN)
        if len(e.args) == 2:
            size = self._str_size(e.args[1])
        if isinstance(arg, ast.FieldAccess) and isinstance(arg.expr, ast.Builtin) \
                and arg.expr.name == "args":
            f = self._tp_field(arg)
            if f.ctype.startswith("__data_loc"):
                loc = self._ctx_load(f.offset, 4, False)
                off = self.b.and_(loc, ir.Constant(i64, 0xFFFF))
                src = self.b.gep(self.fn.args[0], [off])
                self._helper("bpf_probe_read_kernel_str", i64, [self._ptr(dst), size, src])
                return
        value, vtype = self._expr(arg)
        if vtype.kind != "int":
            raise self.error(f"str() needs a pointer, not {vtype}", arg)
        self._helper("bpf_probe_read_str", i64, [self._ptr(dst), size,
                                                 self.b.inttoptr(value, i8p)])

    def _str_size(self, length: ast.Expr) -> ir.Value:
        """str(p, n)'s read size: n bytes and the NUL, at most the string size; ``n`` may be
        known only at run time (``str(args->buf, args->count)``)."""
        if isinstance(length, ast.Integer):
            if not 0 <= length.value:
                raise self.error("str()'s length cannot be negative", length)
            return ir.Constant(i32, min(length.value, STRLEN - 1) + 1)
        n, ntype = self._expr(length)
        if ntype.kind != "int":
            raise self.error(f"str()'s length must be an integer, not {ntype}", length)
        limit = ir.Constant(i64, STRLEN - 1)
        capped = self.b.select(self.b.icmp_unsigned("<", n, limit), n, limit)
        return self.b.trunc(self.b.add(capped, ir.Constant(i64, 1)), i32)

    def _emit_event(self, kind: int, ident: int, values: list[tuple[ir.Value, SType]]):
        size = 16 + sum(8 if t.kind == "int" else t.size for _, t in values)
        size = (size + 7) & ~7
        if size > 448:
            raise self.error("too much data in one event (the BPF stack holds 512 bytes)",
                             self.probe)
        buf = self._zeroed(size, "event")
        p = self._ptr(buf)
        self.b.store(ir.Constant(i64, kind), self.b.bitcast(p, i64.as_pointer()))
        self.b.store(ir.Constant(i64, ident),
                     self.b.bitcast(self.b.gep(p, [ir.Constant(i64, 8)]), i64.as_pointer()))
        off = 16
        for value, vtype in values:
            dst = self.b.gep(p, [ir.Constant(i64, off)])
            if isinstance(value, bytes):  # a string literal: written in place, no copy
                self._store_literal(dst, value)
                off += vtype.size
            elif callable(value):  # str(): read straight into the event
                value(dst)
                off += vtype.size
            elif vtype.kind == "int":
                self.b.store(value, self.b.bitcast(dst, i64.as_pointer()), align=1)
                off += 8
            else:
                self._memcpy(dst, value, vtype.size)
                off += vtype.size
        self._helper("bpf_ringbuf_output", i64, [self._map_ptr(self.ringbuf_index), p,
                                                 ir.Constant(i64, size), ir.Constant(i64, 0)])

    def _call_printf(self, e: ast.Call):
        if not e.args or not isinstance(e.args[0], ast.String):
            raise self.error("printf() needs a format string first", e)
        return self._format_event(e, EV_PRINTF)

    def _format_event(self, e: ast.Call, kind: int):
        """An event of a format string and its arguments (printf, cat), formatted by user
        space."""
        # string literal arguments go straight into the event (a 64-byte copy each would
        # crowd the 512-byte stack: bpftrace's tools print column headers this way)
        values = []
        for a in e.args[1:]:
            if isinstance(a, ast.String):
                values.append((self._literal(a), SType("str", STRLEN)))
            elif isinstance(a, ast.Call) and a.name == "str" and 1 <= len(a.args) <= 2 \
                    and self._str_reads(a.args[0]):
                # read into the event itself when the event is written
                values.append((lambda dst, a=a: self._str_into(a, dst), SType("str", STRLEN)))
            else:
                values.append(self._expr(a))
        for a, (_, t) in zip(e.args[1:], values):
            if t.rec:
                raise self.error(f"{e.name}() cannot print a {t}: print one of its members", a)
        fmt = PrintfFormat(len(self.formats), e.args[0].value, [t for _, t in values], kind)
        from .output import check_format
        problem = check_format(fmt.fmt, fmt.arg_types)
        if problem:
            raise self.error(problem, e)
        self.formats.append(fmt)
        self._emit_event(kind, fmt.id, values)
        return ir.Constant(i64, 0), NONE

    def _call_join(self, e: ast.Call):
        """join(char *arr[] [, delim]): the array's strings (up to its NULL, at most
        JOIN_ARGNUM of JOIN_ARGSIZE bytes) printed as one line, as bpftrace prints them. The
        record (16 KiB) is reserved in the ring buffer and the strings read straight into it:
        the BPF stack could not hold it."""
        if not 1 <= len(e.args) <= 2:
            raise self.error("join() takes an array of strings and an optional delimiter", e)
        delim = " "
        if len(e.args) == 2:
            if not isinstance(e.args[1], ast.String):
                raise self.error("join()'s delimiter must be a string literal", e.args[1])
            delim = e.args[1].value
        arr, atype = self._expr(e.args[0])
        if atype.kind != "int":
            raise self.error("join() needs a pointer to an array of strings", e.args[0])
        fmt = PrintfFormat(len(self.formats), delim, [], EV_JOIN)
        self.formats.append(fmt)
        size = 16 + JOIN_ARGNUM * JOIN_ARGSIZE
        rec = self._helper("bpf_ringbuf_reserve", i8p, [self._map_ptr(self.ringbuf_index),
                                                       ir.Constant(i64, size),
                                                       ir.Constant(i64, 0)])
        done = self.fn.append_basic_block("join_done")
        fill = self.fn.append_basic_block("join_fill")
        self.b.cbranch(self.b.icmp_unsigned("==", self.b.ptrtoint(rec, i64),
                                            ir.Constant(i64, 0)), done, fill)
        self.b.position_at_end(fill)
        self.b.store(ir.Constant(i64, EV_JOIN), self.b.bitcast(rec, i64.as_pointer()))
        self.b.store(ir.Constant(i64, fmt.id),
                     self.b.bitcast(self.b.gep(rec, [ir.Constant(i64, 8)]), i64.as_pointer()))
        slot = self._alloca(i64, "join_ptr")
        submit = self.fn.append_basic_block("join_submit")
        for i in range(JOIN_ARGNUM):
            dst = self.b.gep(rec, [ir.Constant(i64, 16 + i * JOIN_ARGSIZE)])
            self._helper("bpf_probe_read", i64, [self._ptr(slot), ir.Constant(i32, 8),
                                                 self.b.inttoptr(self.b.add(
                                                     arr, ir.Constant(i64, 8 * i)), i8p)])
            ptr = self.b.load(slot)
            more = self.fn.append_basic_block(f"join_arg{i}")
            end = self.fn.append_basic_block(f"join_end{i}")
            self.b.cbranch(self.b.icmp_unsigned("==", ptr, ir.Constant(i64, 0)), end, more)
            self.b.position_at_end(end)  # the array's NULL: an empty string ends the list
            self.b.store(ir.Constant(i8, 0), dst)
            self.b.branch(submit)
            self.b.position_at_end(more)
            self._helper("bpf_probe_read_str", i64, [dst, ir.Constant(i32, JOIN_ARGSIZE),
                                                     self.b.inttoptr(ptr, i8p)])
        self.b.branch(submit)
        self.b.position_at_end(submit)
        self._helper("bpf_ringbuf_submit", i64, [rec, ir.Constant(i64, 0)])
        self.b.branch(done)
        self.b.position_at_end(done)
        return ir.Constant(i64, 0), NONE

    def _call_time(self, e: ast.Call):
        fmt = "%H:%M:%S\n"
        if e.args:
            if not isinstance(e.args[0], ast.String):
                raise self.error("time() takes a format string", e)
            fmt = e.args[0].value
        f = PrintfFormat(len(self.formats), fmt, [], EV_TIME)
        self.formats.append(f)
        self._emit_event(EV_TIME, f.id, [])
        return ir.Constant(i64, 0), NONE

    def _map_arg(self, e: ast.Call, fname: str) -> MapInfo:
        if len(e.args) != 1 or not isinstance(e.args[0], ast.Map):
            raise self.error(f"{fname}() takes one map", e)
        info = self.maps.get(e.args[0].name)
        if info is None:
            raise self.error(f"map @{e.args[0].name} is never assigned", e.args[0])
        return info

    def _call_print(self, e: ast.Call):
        if 1 <= len(e.args) <= 3 and isinstance(e.args[0], ast.Map) and not e.args[0].keys:
            # print(@map[, top[, div]]): the greatest ``top`` entries, values divided by
            # ``div``; both integer literals, as bpftrace requires
            for extra in e.args[1:]:
                if not isinstance(extra, ast.Integer):
                    raise self.error("print() expects an integer literal for its top and div "
                                     "arguments", extra)
            info = self._map_arg(ast.Call(e.line, e.col, e.name, e.args[:1]), "print")
            limits = [a.value for a in e.args[1:]] + [0] * (3 - len(e.args))
            self._emit_event(EV_PRINT, info.index,
                             [(ir.Constant(i64, v), INT) for v in limits])
            return ir.Constant(i64, 0), NONE
        if len(e.args) != 1:
            raise self.error("print() takes one argument", e)
        value, vtype = self._expr(e.args[0])
        fmt = PrintfFormat(len(self.formats), "%d\n" if vtype.kind == "int" else "%s\n",
                           [vtype])
        self.formats.append(fmt)
        self._emit_event(EV_PRINTF, fmt.id, [(value, vtype)])
        return ir.Constant(i64, 0), NONE

    def _call_clear(self, e: ast.Call):
        info = self._map_arg(e, "clear")
        self._emit_event(EV_CLEAR, info.index, [])
        return ir.Constant(i64, 0), NONE

    def _call_zero(self, e: ast.Call):
        info = self._map_arg(e, "zero")
        self._emit_event(EV_ZERO, info.index, [])
        return ir.Constant(i64, 0), NONE

    def _call_delete(self, e: ast.Call):
        if len(e.args) != 1 or not isinstance(e.args[0], ast.Map):
            raise self.error("delete() takes one map element, e.g. delete(@m[k])", e)
        node = e.args[0]
        info = self.maps.get(node.name)
        if info is None:
            raise self.error(f"map @{node.name} is never assigned", node)
        if info.value in ("hist", "lhist"):
            raise self.error("delete() of a histogram element is not supported; use clear()",
                             e)
        key = self._map_key(info, node)
        if info.is_array:  # as bpftrace: an array element is zeroed (this CPU's slot)
            self._update(info, key, self._zeroed(info.value_size, "zero"))
        else:
            self._helper("bpf_map_delete_elem", i64, [self._map_ptr(info.index),
                                                      self._ptr(key)])
        return ir.Constant(i64, 0), NONE

    def _call_exit(self, e: ast.Call):
        self._emit_event(EV_EXIT, 0, [])
        self.b.branch(self.exit_block)
        # statements after exit() in this block are unreachable: give them a fresh block
        self.b.position_at_end(self.fn.append_basic_block("after_exit"))
        return ir.Constant(i64, 0), NONE


def emit_object(module: "ir.Module | str", opt: int = 2) -> bytes:
    """Compile an LLVM module for the BPF target into an ELF relocatable object (in the
    LLVM worker, :mod:`.worker`)."""
    from .worker import emit

    return emit(str(module), opt, "obj")


def emit_assembly(module: "ir.Module | str", opt: int = 2) -> str:
    from .worker import emit

    return emit(str(module), opt, "asm")
