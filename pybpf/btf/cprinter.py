"""Print BTF types as C, like ``bpftool btf dump file X format c`` (libbpf's btf_dump).

The output must compile, so the order matters: a struct embedded by value has to be defined
before the struct that embeds it, while one reached through a pointer only needs a forward
declaration. Following libbpf's ``btf_dump.c`` behaviour:

1. *ordering* walks every type depth-first and queues named definitions after the ones they
   strongly depend on (embedded, or through an anonymous type); pointers make a dependency
   weak (a cycle through a pointer is broken with ``struct X;``);
2. *emitting* prints each queued type, first emitting forward declarations for types it
   refers to weakly that are not yet out; anonymous structs, unions and enums are printed
   inline where they are used;
3. declarations are built from the chain of BTF types inside-out (``int (*f[4])(void)``),
   const/volatile go after pointers and before base types, explicit bit padding
   (``long: 64;``) reproduces holes the natural C layout would not make, and a struct whose
   layout cannot be natural gets ``__attribute__((packed))``;
4. names shared by several types get ``___N`` suffixes (types and identifiers are separate
   name spaces, as in C).

``format_raw`` prints the raw format (``bpftool btf dump file X``).
"""

from __future__ import annotations

from ..errors import BTFError
from . import types as T

PTR_SIZE = 8
_PADS = (("long", PTR_SIZE * 8), ("int", 32), ("short", 16), ("char", 8))
#: holes beyond this (16 MiB) only occur in damaged BTF; printing them would never end
MAX_PADDING_BITS = 8 << 24
_NOT_ORDERED, _ORDERING, _ORDERED = 0, 1, 2
_NOT_EMITTED, _EMITTING, _EMITTED = 0, 1, 2

HEADER = """#ifndef __VMLINUX_H__
#define __VMLINUX_H__

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
#endif

"""
FOOTER = """#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute pop
#endif

#endif /* __VMLINUX_H__ */
"""


def _pfx(lvl: int) -> str:
    return "\t" * lvl


def align_of(btf: T.BTF, type_id: int, depth: int = 0) -> int:
    """Natural alignment of a type (``btf__align_of``); 1 for a struct that must be packed."""
    cache = btf.__dict__.setdefault("_align_cache", {})
    hit = cache.get(type_id)
    if hit is None:
        hit = cache[type_id] = _align_of(btf, type_id, depth)
    return hit


def _align_of(btf: T.BTF, type_id: int, depth: int) -> int:
    if depth > 64:
        raise BTFError(f"BTF: type {type_id} nests too deeply")
    t = btf[type_id]
    if isinstance(t, (T.Int, T.Enum, T.Float)):
        return min(PTR_SIZE, t.size) or 1
    if isinstance(t, T.Pointer):
        return PTR_SIZE
    if isinstance(t, T.Typedef):  # and the modifiers
        return align_of(btf, t.type_id, depth + 1)
    if isinstance(t, T.Array):
        return align_of(btf, t.type_id, depth + 1)
    if isinstance(t, T.Struct):
        max_align = 1
        for m in t.members:
            a = align_of(btf, m.type_id, depth + 1)
            max_align = max(max_align, a)
            if m.bitfield_size == 0 and m.bit_offset % (8 * a):
                return 1   # a misaligned field: the struct must be packed
        if t.size % max_align:
            return 1
        return max_align
    return 1


def _is_packed(btf: T.BTF, t: T.Struct) -> bool:
    max_align = 1
    for m in t.members:
        a = align_of(btf, m.type_id)
        if a and m.bitfield_size == 0 and m.bit_offset % (8 * a):
            return True
        max_align = max(max_align, a)
    return t.size % max_align != 0


def _resolve_size(btf: T.BTF, type_id: int) -> int:
    try:
        return btf.sizeof(type_id)
    except BTFError:
        return 0


class CPrinter:
    """Emit C for the types of one BTF (libbpf's ``struct btf_dump``)."""

    def __init__(self, btf: T.BTF, *, enum_size_attrs: bool = True):
        self.btf = btf
        self.enum_size_attrs = enum_size_attrs
        n = len(btf)
        self.order = [_NOT_ORDERED] * n
        self.emit = [_NOT_EMITTED] * n
        self.fwd_emitted = [False] * n
        self.referenced = [False] * n
        self.order[0] = _ORDERED
        self.emit[0] = _EMITTED
        self.names: dict[int, str] = {}
        self.type_names: dict[str, int] = {}
        self.ident_names: dict[str, int] = {}
        self.out: list[str] = []
        self.queue: list[int] = []
        for t in btf:
            for ref in _refs(t):
                if 0 <= ref < n:
                    self.referenced[ref] = True

    # --- output ----------------------------------------------------------------------------
    def w(self, text: str) -> None:
        self.out.append(text)

    def text(self) -> str:
        return "".join(self.out)

    # --- names -----------------------------------------------------------------------------
    def _resolve(self, type_id: int, space: dict[str, int]) -> str:
        t = self.btf[type_id]
        if not t.name:
            return ""
        if type_id in self.names:
            return self.names[type_id]
        name = t.name
        if not (isinstance(t, T.Fwd) or (isinstance(t, T.Enum) and not t.values)):
            count = space.get(name, 0) + 1
            space[name] = count
            if count > 1:
                name = f"{name}___{count}"
        self.names[type_id] = name
        return name

    def type_name(self, type_id: int) -> str:
        return self._resolve(type_id, self.type_names)

    def ident_name(self, type_id: int) -> str:
        return self._resolve(type_id, self.ident_names)

    # --- ordering ----------------------------------------------------------------------------
    def order_type(self, type_id: int, through_ptr: bool) -> int:
        """1: strong link (must be defined first), 0: weak (a forward declaration will do)."""
        if self.order[type_id] == _ORDERED:
            return 1
        t = self.btf[type_id]
        if self.order[type_id] == _ORDERING:
            if isinstance(t, T.Struct) and through_ptr and t.name:
                return 0
            raise BTFError(f"BTF: unsatisfiable type cycle at type {type_id}")
        kind = t.kind
        if kind in ("int", "float"):
            self.order[type_id] = _ORDERED
            return 0
        if kind == "ptr":
            res = self.order_type(t.type_id, True)
            self.order[type_id] = _ORDERED
            return res
        if kind == "array":
            return self.order_type(t.type_id, False)
        if kind in ("struct", "union"):
            if through_ptr and t.name:
                return 0
            self.order[type_id] = _ORDERING
            for m in t.members:
                self.order_type(m.type_id, False)
            if t.name:
                self.queue.append(type_id)
            self.order[type_id] = _ORDERED
            return 1
        if kind in ("enum", "enum64", "fwd"):
            if t.name or not self.referenced[type_id]:
                self.queue.append(type_id)
            self.order[type_id] = _ORDERED
            return 1
        if kind == "typedef":
            strong = self.order_type(t.type_id, through_ptr)
            if through_ptr and not strong:
                return 0
            self.queue.append(type_id)
            self.order[type_id] = _ORDERED
            return 1
        if kind in ("volatile", "const", "restrict", "type_tag"):
            return self.order_type(t.type_id, through_ptr)
        if kind == "func_proto":
            strong = self.order_type(t.return_type_id, through_ptr) > 0
            for p in t.params:
                if self.order_type(p.type_id, through_ptr) > 0:
                    strong = True
            return int(strong)
        self.order[type_id] = _ORDERED   # func, var, datasec, decl_tag
        return 0

    # --- emitting ----------------------------------------------------------------------------
    def emit_type(self, type_id: int, cont_id: int) -> None:
        if self.emit[type_id] == _EMITTED:
            return
        t = self.btf[type_id]
        kind = t.kind
        top_level = cont_id == 0
        if self.emit[type_id] == _EMITTING:
            if self.fwd_emitted[type_id]:
                return
            if kind in ("struct", "union"):
                if type_id == cont_id or not t.name:
                    return
                self.w(self.struct_fwd(type_id) + ";\n\n")
                self.fwd_emitted[type_id] = True
            elif kind == "typedef":
                if t.name != "__builtin_va_list":
                    self.w(self.typedef_def(type_id, 0) + ";\n\n")
                self.fwd_emitted[type_id] = True
            return
        if kind == "int":
            self.emit[type_id] = _EMITTED
        elif kind in ("enum", "enum64"):
            if top_level:
                self.w(self.enum_def(type_id, 0) + ";\n\n")
            self.emit[type_id] = _EMITTED
        elif kind in ("ptr", "volatile", "const", "restrict", "type_tag", "array"):
            self.emit_type(t.type_id, cont_id)
        elif kind == "fwd":
            self.w(self.fwd_def(type_id) + ";\n\n")
            self.emit[type_id] = _EMITTED
        elif kind == "typedef":
            self.emit[type_id] = _EMITTING
            self.emit_type(t.type_id, type_id)
            if not self.fwd_emitted[type_id] and t.name != "__builtin_va_list":
                self.w(self.typedef_def(type_id, 0) + ";\n\n")
            self.emit[type_id] = _EMITTED
        elif kind in ("struct", "union"):
            self.emit[type_id] = _EMITTING
            if top_level or not t.name:
                new_cont = cont_id if not t.name else type_id
                for m in t.members:
                    self.emit_type(m.type_id, new_cont)
            elif not self.fwd_emitted[type_id] and type_id != cont_id:
                self.w(self.struct_fwd(type_id) + ";\n\n")
                self.fwd_emitted[type_id] = True
            if top_level:
                self.w(self.struct_def(type_id, 0) + ";\n\n")
                self.emit[type_id] = _EMITTED
            else:
                self.emit[type_id] = _NOT_EMITTED
        elif kind == "func_proto":
            self.emit_type(t.return_type_id, cont_id)
            for p in t.params:
                self.emit_type(p.type_id, cont_id)

    # --- definitions -------------------------------------------------------------------------
    def struct_fwd(self, type_id: int) -> str:
        t = self.btf[type_id]
        name = self.type_name(type_id)
        return f"{t.kind}{' ' if t.name else ''}{name}"

    def fwd_def(self, type_id: int) -> str:
        t = self.btf[type_id]
        return f"{'union' if t.is_union else 'struct'} {self.type_name(type_id)}"

    def typedef_def(self, type_id: int, lvl: int) -> str:
        t = self.btf[type_id]
        name = self.ident_name(type_id)
        if t.type_id == 0 and name == "__gnuc_va_list":
            return "typedef __builtin_va_list __gnuc_va_list"
        return "typedef " + self.type_decl(t.type_id, name, lvl)

    def enum_def(self, type_id: int, lvl: int) -> str:
        t = self.btf[type_id]
        parts = [f"enum{' ' if t.name else ''}{self.type_name(type_id)}"]
        if not t.values:
            return parts[0]
        parts.append(" {")
        is64 = t.kind == "enum64"
        for v in t.values:
            count = self.ident_names.get(v.name, 0) + 1
            self.ident_names[v.name] = count
            name = f"{v.name}___{count}" if count > 1 else v.name
            if is64:
                value = v.value if t.signed else v.value & ((1 << 64) - 1)
                suffix = "LL" if t.signed else "ULL"
                parts.append(f"\n{_pfx(lvl + 1)}{name} = {value}{suffix},")
            else:
                value = v.value if t.signed else v.value & 0xFFFFFFFF
                parts.append(f"\n{_pfx(lvl + 1)}{name} = {value},")
        parts.append(f"\n{_pfx(lvl)}}}")
        if not self.enum_size_attrs:
            pass
        elif t.size == 1:
            parts.append(" __attribute__((mode(byte)))")
        elif t.size == 8:
            word = True
            if is64:
                word = not any((v.value & ((1 << 64) - 1)) >> 32 for v in t.values)
            if word:
                parts.append(" __attribute__((mode(word)))")
        return "".join(parts)

    def struct_def(self, type_id: int, lvl: int) -> str:
        btf = self.btf
        t = btf[type_id]
        is_struct = t.kind == "struct"
        packed = is_struct and _is_packed(btf, t)
        align = align_of(btf, type_id)
        parts = [f"{t.kind}{' ' if t.name else ''}{self.type_name(type_id)} {{"]
        off = 0
        prev_bitfield = False
        for m in t.members:
            m_sz = m.bitfield_size
            m_off = m.bit_offset
            m_align = 1 if packed else align_of(btf, m.type_id)
            in_bitfield = prev_bitfield and m_sz != 0
            parts.append(_bit_padding(off, m_off, m_align, in_bitfield, lvl + 1))
            parts.append(f"\n{_pfx(lvl + 1)}")
            parts.append(self.type_decl(m.type_id, m.name, lvl + 1))
            if m_sz:
                parts.append(f": {m_sz}")
                off = m_off + m_sz
                prev_bitfield = True
            else:
                off = m_off + max(0, _resolve_size(btf, m.type_id)) * 8
                prev_bitfield = False
            parts.append(";")
        if is_struct:
            parts.append(_bit_padding(off, t.size * 8, align, False, lvl + 1))
        if t.members or t.size:
            parts.append(f"\n{_pfx(lvl)}}}")
        else:
            parts.append("}")
        if packed:
            parts.append(" __attribute__((packed))")
        return "".join(parts)

    # --- declarations ------------------------------------------------------------------------
    def type_decl(self, type_id: int, fname: str, lvl: int) -> str:
        stack: list[int] = []
        seen = 0
        while True:
            stack.append(type_id)
            if type_id == 0:
                break
            t = self.btf[type_id]
            if t.kind in ("ptr", "volatile", "const", "restrict", "type_tag"):
                type_id = t.type_id
            elif t.kind == "func_proto":
                type_id = t.return_type_id
            elif t.kind == "array":
                type_id = t.type_id
            else:
                break
            seen += 1
            if seen > 256:
                raise BTFError(f"BTF: declaration chain too long at type {type_id}")
        out: list[str] = []
        self._chain(stack, fname, lvl, out)
        return "".join(out)

    def _mods(self, stack: list[int], out: list[str]) -> None:
        while stack:
            t = self.btf[stack[-1]]
            word = {"volatile": "volatile ", "const": "const ", "restrict": "restrict "}.get(
                t.kind)
            if word is None:
                return
            out.append(word)
            stack.pop()

    def _drop_mods(self, stack: list[int]) -> None:
        while stack and self.btf[stack[-1]].kind in ("volatile", "const", "restrict",
                                                     "type_tag"):
            stack.pop()

    @staticmethod
    def _name(fname: str, last_was_ptr: bool, out: list[str]) -> None:
        out.append((" " if fname and not last_was_ptr else "") + fname)

    def _chain(self, stack: list[int], fname: str, lvl: int, out: list[str]) -> None:
        last_was_ptr = True
        while stack:
            type_id = stack.pop()
            if type_id == 0:
                self._mods(stack, out)
                out.append("void")
                last_was_ptr = False
                continue
            t = self.btf[type_id]
            kind = t.kind
            if kind in ("int", "float"):
                self._mods(stack, out)
                out.append(t.name)
            elif kind in ("struct", "union"):
                self._mods(stack, out)
                out.append(self.struct_def(type_id, lvl) if not t.name
                           else self.struct_fwd(type_id))
            elif kind in ("enum", "enum64"):
                self._mods(stack, out)
                out.append(self.enum_def(type_id, lvl) if not t.name
                           else f"enum {self.type_name(type_id)}")
            elif kind == "fwd":
                self._mods(stack, out)
                out.append(self.fwd_def(type_id))
            elif kind == "typedef":
                self._mods(stack, out)
                out.append(self.ident_name(type_id))
            elif kind == "ptr":
                out.append("*" if last_was_ptr else " *")
            elif kind in ("volatile", "const", "restrict"):
                out.append(" " + kind)
            elif kind == "type_tag":
                self._mods(stack, out)
                out.append(f' __attribute__((btf_type_tag("{t.name}")))')
            elif kind == "array":
                self._drop_mods(stack)
                if not stack:
                    self._name(fname, last_was_ptr, out)
                    out.append(f"[{t.nelems}]")
                    return
                multidim = self.btf[stack[-1]].kind == "array"
                if fname and not last_was_ptr:
                    out.append(" ")
                if not multidim:
                    out.append("(")
                self._chain(stack, fname, lvl, out)
                if not multidim:
                    out.append(")")
                out.append(f"[{t.nelems}]")
                return
            elif kind == "func_proto":
                self._drop_mods(stack)
                if stack:
                    out.append(" (")
                    self._chain(stack, fname, lvl, out)
                    out.append(")")
                else:
                    self._name(fname, last_was_ptr, out)
                out.append("(")
                params = t.params
                if not params or (len(params) == 1 and params[0].type_id == 0):
                    out.append("void)")
                    return
                for i, p in enumerate(params):
                    if i:
                        out.append(", ")
                    if i == len(params) - 1 and p.type_id == 0:
                        out.append("...")
                        break
                    out.append(self.type_decl(p.type_id, p.name, lvl))
                out.append(")")
                return
            else:
                return
            last_was_ptr = kind == "ptr"
        self._name(fname, last_was_ptr, out)

    # --- whole dump --------------------------------------------------------------------------
    def dump_type(self, type_id: int) -> None:
        self.queue = []
        self.order_type(type_id, False)
        for queued in self.queue:
            self.emit_type(queued, 0)


def _bit_padding(cur: int, nxt: int, next_align: int, in_bitfield: bool, lvl: int) -> str:
    if cur >= nxt:
        return ""
    out = []
    new_off = pad_bits = 0
    pad_type = ""
    for pad_type, pad_bits in _PADS:
        new_off = -(-cur // pad_bits) * pad_bits
        if new_off <= nxt:
            break
    if cur < new_off <= nxt:
        if (in_bitfield
                or (new_off == nxt and -(-cur // (next_align * 8)) * next_align * 8 != new_off)
                or (new_off != nxt and nxt - new_off <= new_off - cur)):
            out.append(f"\n{_pfx(lvl)}{pad_type}: {new_off - cur if in_bitfield else 0};")
        cur = new_off
    if nxt - cur > MAX_PADDING_BITS:
        raise BTFError(f"BTF: a {(nxt - cur) // 8}-byte hole is too large to print as C")
    whole = (nxt - cur) // pad_bits
    if whole:
        out.append(f"\n{_pfx(lvl)}{pad_type}: {pad_bits};" * whole)
        cur += whole * pad_bits
    while cur != nxt:
        bits = min(nxt - cur, pad_bits)
        for name, size in reversed(_PADS):
            if size < bits:
                continue
            out.append(f"\n{_pfx(lvl)}{name}: {bits};")
            cur += bits
            break
    return "".join(out)


def _refs(t: T.Type) -> list[int]:
    if isinstance(t, (T.Typedef, T.Pointer, T.Func, T.Var, T.DeclTag)):
        return [t.type_id]
    if isinstance(t, T.Array):
        return [t.index_type_id, t.type_id]
    if isinstance(t, T.Struct):
        return [m.type_id for m in t.members]
    if isinstance(t, T.FuncProto):
        return [p.type_id for p in t.params]
    if isinstance(t, T.Datasec):
        return [v.type_id for v in t.vars]
    return []


def format_c(btf: T.BTF, type_ids=None, *, header: bool = True,
             enum_size_attrs: bool = True) -> str:
    """C declarations of ``type_ids`` (default: every type) and what they need.

    ``enum_size_attrs``: mark 1- and 8-byte enums with ``mode(byte)`` / ``mode(word)`` as
    libbpf >= 1.2 does (bpftool built on libbpf 1.1 does not).
    """
    p = CPrinter(btf, enum_size_attrs=enum_size_attrs)
    try:
        for type_id in (type_ids if type_ids is not None else range(1, len(btf))):
            p.dump_type(type_id)
    except RecursionError:
        raise BTFError("BTF: the type graph is cyclic or too deep to print as C") from None
    body = p.text()
    return HEADER + body + FOOTER if header else body


def type_name(btf: T.BTF, type_id: int) -> str:
    """A type as it is written in C (``struct task_struct *``, ``__u32``, ``char[16]``)."""
    try:
        return CPrinter(btf).type_decl(type_id, "", 0)
    except RecursionError:
        raise BTFError(f"BTF: type {type_id} is cyclic or too deep to print") from None


# --- raw format ---------------------------------------------------------------------------------

_INT_ENC = {0: "(none)", T.INT_SIGNED: "SIGNED", T.INT_CHAR: "CHAR", T.INT_BOOL: "BOOL"}


def _q(name: str) -> str:
    return f"'{name or '(anon)'}'"


def format_raw_type(btf: T.BTF, t: T.Type) -> str:
    """One type in ``bpftool btf dump`` raw format."""
    head = f"[{t.id}] {t.kind.upper()} {_q(t.name)}"
    if isinstance(t, T.Int):
        return (f"{head} size={t.size} bits_offset={t.offset} nr_bits={t.bits} "
                f"encoding={_INT_ENC.get(t.encoding, 'UNKN')}")
    if isinstance(t, T.Array):
        return f"{head} type_id={t.type_id} index_type_id={t.index_type_id} nr_elems={t.nelems}"
    if isinstance(t, T.Struct):
        lines = [f"{head} size={t.size} vlen={len(t.members)}"]
        for m in t.members:
            extra = f" bitfield_size={m.bitfield_size}" if m.bitfield_size else ""
            lines.append(f"\t{_q(m.name)} type_id={m.type_id} bits_offset={m.bit_offset}{extra}")
        return "\n".join(lines)
    if isinstance(t, T.Enum):
        enc = "SIGNED" if t.signed else "UNSIGNED"
        lines = [f"{head} encoding={enc} size={t.size} vlen={len(t.values)}"]
        for v in t.values:
            if t.kind == "enum64":
                value = v.value if t.signed else v.value & ((1 << 64) - 1)
                lines.append(f"\t{_q(v.name)} val={value}{'LL' if t.signed else 'ULL'}")
            else:
                value = v.value if t.signed else v.value & 0xFFFFFFFF
                lines.append(f"\t{_q(v.name)} val={value}")
        return "\n".join(lines)
    if isinstance(t, T.Fwd):
        return f"{head} fwd_kind={'union' if t.is_union else 'struct'}"
    if isinstance(t, T.Func):
        return f"{head} type_id={t.type_id} linkage={t.linkage}"
    if isinstance(t, T.FuncProto):
        lines = [f"{head} ret_type_id={t.return_type_id} vlen={len(t.params)}"]
        for p in t.params:
            lines.append(f"\t{_q(p.name)} type_id={p.type_id}")
        return "\n".join(lines)
    if isinstance(t, T.Var):
        return f"{head} type_id={t.type_id}, linkage={t.linkage}"
    if isinstance(t, T.Datasec):
        lines = [f"{head} size={t.size} vlen={len(t.vars)}"]
        for v in t.vars:
            var = btf[v.type_id]
            lines.append(f"\ttype_id={v.type_id} offset={v.offset} size={v.size} "
                         f"({var.kind.upper()} {_q(var.name)})")
        return "\n".join(lines)
    if isinstance(t, T.Float):
        return f"{head} size={t.size}"
    if isinstance(t, T.DeclTag):
        return f"{head} type_id={t.type_id} component_idx={t.component_idx}"
    if isinstance(t, (T.Pointer, T.Typedef)):   # and the modifiers, type tags
        return f"{head} type_id={t.type_id}"
    return head


def format_raw(btf: T.BTF) -> str:
    """Every type, like ``bpftool btf dump file X`` (raw format)."""
    return "".join(format_raw_type(btf, btf[i]) + "\n" for i in range(1, len(btf)))
