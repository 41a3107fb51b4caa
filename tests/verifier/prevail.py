"""Turn PREVAIL's YAML verifier tests into programs the kernel can judge.

Each test case has preconditions (``pre``) on registers and stack bytes and a labelled body
(``code``) in the kernel's assembly syntax. The conditions the kernel can express become a
prologue: constants are loaded, number ranges are made by reading an unknown stack word and
bounding it with jumps to an exit, stack/ctx/packet pointers are derived from r10, r1 and the
XDP context. Cases whose conditions cannot be expressed are skipped with the reason. The verdict
that matters is the kernel's on the converted program; PREVAIL's own post-states are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass
class Converted:
    file: str
    name: str
    text: str | None
    prog_type: str
    skip: str | None = None


_REG = re.compile(r"^(r\d+)\.(\w+)=(.*)$")
_STACK = re.compile(r"^s\[(\d+)(?:\.\.\.(\d+))?\]\.(\w+)=(.*)$")
_RANGE = re.compile(r"^\[(-?\d+),\s*(-?\d+)\]$")
S64_MIN, S64_MAX, U64 = -(1 << 63), (1 << 63) - 1, (1 << 64) - 1


class Unsupported(Exception):
    pass


def _value(text: str):
    text = text.strip()
    m = _RANGE.match(text)
    if m:
        return int(m.group(1)), int(m.group(2))
    if re.fullmatch(r"-?\d+", text):
        v = int(text)
        return v, v
    raise Unsupported(f"value {text!r}")


def _label(name: str) -> str:
    return "L_" + re.sub(r"\W", "_", name.strip("<>"))


def _code(code) -> str:
    if isinstance(code, str):
        blocks = [("<start>", code)]
    else:
        blocks = list(code.items())
    out = []
    for label, body in blocks:
        out.append(f"{_label(label)}:")
        for line in str(body).splitlines():
            line = line.split(";")[0] if not re.search(r"call \d+;", line) else \
                line.split(";")[0]
            line = re.sub(r"<([\w.]+)>", lambda m: _label(m.group(1)), line)
            line = re.sub(r"(\d)ll\b", r"\1 ll", line).strip()
            m = re.match(r"assume\s+([rw]\d+)\s+(\S+)\s+(\S+)$", line)
            if m:
                neg = _NEGATE.get(m.group(2))
                if neg is None:
                    raise Unsupported(f"assume with {m.group(2)!r}")
                line = f"if {m.group(1)} {neg} {m.group(3)} goto L___pre_out"
            if line:
                out.append(line)
    return "\n".join(out)


_NEGATE = {"<": ">=", ">=": "<", ">": "<=", "<=": ">", "==": "!=", "!=": "==", "s<": "s>=",
           "s>=": "s<", "s>": "s<=", "s<=": "s>"}


def _used_regs(text: str) -> set[int]:
    return {int(m) for m in re.findall(r"\b[rw](\d+)\b", text)}


def convert(file: str, case: dict) -> Converted:
    name = case.get("test-case", "?")
    try:
        return _convert(file, name, case)
    except Unsupported as exc:
        return Converted(file, name, None, "socket_filter", str(exc))


def _convert(file: str, name: str, case: dict) -> Converted:
    options = case.get("options") or []
    if "big_endian" in options:
        raise Unsupported("big-endian option")
    pre = case.get("pre") or []
    body = _code(case.get("code") or "")
    need_out = "L___pre_out" in body
    regs: dict[str, dict[str, str]] = {}
    stack: list[tuple[int, int, dict]] = []
    globals_: dict[str, str] = {}
    for item in pre:
        item = str(item)
        m = _REG.match(item)
        if m:
            regs.setdefault(m.group(1), {})[m.group(2)] = m.group(3)
            continue
        m = _STACK.match(item)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
            for entry in stack:
                if entry[0] == lo and entry[1] == hi:
                    entry[2][m.group(3)] = m.group(4)
                    break
            else:
                stack.append((lo, hi, {m.group(3): m.group(4)}))
            continue
        if "=" in item:
            k, v = item.split("=", 1)
            globals_[k.strip()] = v.strip()
            continue
        raise Unsupported(f"precondition {item!r}")
    used = _used_regs(body) | {int(r[1:]) for r in regs}
    free = [r for r in range(10) if r not in used]
    prog_type = "socket_filter"
    prologue: list[str] = []
    maps: list[str] = []
    bounds: list[str] = []
    # ctx first (it lives in r1 at entry and other registers may be derived from it)
    ctx_regs = [r for r, a in regs.items() if a.get("type") == "ctx"]
    pkt_regs = [r for r, a in regs.items() if a.get("type") == "packet"]
    if pkt_regs or any(a.get("type") == "ctx" for a in regs.values()):
        prog_type = "xdp"
    if not free:
        raise Unsupported("no free register for the prologue")
    ctx_save = f"r{free[0]}"
    prologue.append(f"{ctx_save} = r1")
    if pkt_regs:
        if len(free) < 3:
            raise Unsupported("no free registers for packet setup")
        data, end = f"r{free[1]}", f"r{free[2]}"
        prologue.append(f"{data} = *(u32 *)({ctx_save} + 0)")
        prologue.append(f"{end} = *(u32 *)({ctx_save} + 4)")
        size = globals_.get("packet_size")
        if size is not None:
            lo, hi = _value(size)
            if lo != hi:
                raise Unsupported("variable packet_size")
            prologue.append(f"r{free[0]} = {data}")
            prologue.append(f"r{free[0]} += {lo}")
            prologue.append(f"if r{free[0]} > {end} goto L___pre_out")
            need_out = True
    for r, attrs in sorted(regs.items(), key=lambda kv: kv[1].get("type") == "ctx"):
        t = attrs.get("type")
        if r == "r10":
            if t != "stack" or attrs.get("stack_offset", "512") != "512":
                raise Unsupported("r10 other than the frame pointer")
            continue
        if t == "ctx":
            if attrs.get("ctx_offset", "0") != "0":
                raise Unsupported("ctx with an offset")
            prologue.append(f"{r} = {ctx_save}")
        elif t == "stack":
            off = attrs.get("stack_offset")
            if off is None:
                raise Unsupported("stack pointer without offset")
            lo, hi = _value(off)
            if lo != hi:
                raise Unsupported("variable stack offset")
            prologue.append(f"{r} = r10")
            if lo - 512:
                prologue.append(f"{r} += {lo - 512}")
        elif t == "packet":
            off = attrs.get("packet_offset", "0")
            lo, hi = _value(off)
            if lo != hi:
                raise Unsupported("variable packet offset")
            prologue.append(f"{r} = {data}")
            if lo:
                prologue.append(f"{r} += {lo}")
        elif t == "map_fd":
            fd = attrs.get("map_fd", "1")
            maps.append(f".map m{fd} hash key=4 value=8 max_entries=16")
            prologue.append(f"{r} = m{fd} ll")
        elif t == "number":
            sv = attrs.get("svalue")
            uv = attrs.get("uvalue")
            svr = _value(sv) if sv and not sv.startswith("r") else None
            uvr = _value(uv) if uv and not uv.startswith("r") else None
            if svr and svr[0] == svr[1]:
                prologue.append(f"{r} = {svr[0] & U64:#x} ll")
            elif uvr and uvr[0] == uvr[1]:
                prologue.append(f"{r} = {uvr[0] & U64:#x} ll")
            else:
                prologue.append(f"{r} = *(u64 *)(r10 - 512)")
                tmp = f"r{free[-1]}"
                for rng, signed in ((svr, True), (uvr, False)):
                    if not rng:
                        continue
                    lo, hi = rng
                    lt, gt = ("s<", "s>") if signed else ("<", ">")
                    if (signed and lo > S64_MIN) or (not signed and lo > 0):
                        bounds.append(f"{tmp} = {lo & U64:#x} ll")
                        bounds.append(f"if {r} {lt} {tmp} goto L___pre_out")
                    if (signed and hi < S64_MAX) or (not signed and hi < U64):
                        bounds.append(f"{tmp} = {hi & U64:#x} ll")
                        bounds.append(f"if {r} {gt} {tmp} goto L___pre_out")
                    need_out = True
        elif t is None:
            continue
        else:
            raise Unsupported(f"register type {t!r}")
    for lo, hi, attrs in stack:
        t = attrs.get("type")
        size = hi - lo + 1
        off = 512 - lo
        if t == "number":
            sv = attrs.get("svalue")
            if sv is None:
                continue  # an unknown number: uninitialised stack reads as unknown for root
            v, v2 = _value(sv)
            if v != v2 or size not in (1, 2, 4, 8) or not -(1 << 31) <= v < (1 << 31):
                raise Unsupported("stack value not expressible as one store")
            width = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}[size]
            prologue.append(f"*({width} *)(r10 - {off}) = {v}")
        else:
            raise Unsupported(f"stack type {t!r}")
    lines = maps + prologue + bounds + [body]
    last = [ln for ln in body.splitlines() if ln and not ln.endswith(":")]
    if not last or not (last[-1] == "exit" or last[-1].startswith("goto ")):
        lines.append("r0 = 0\nexit")
    if need_out:
        lines.append("L___pre_out:\nr0 = 0\nexit")
    return Converted(file, name, "\n".join(lines), prog_type)


def load_cases(directory: Path) -> list[Converted]:
    out = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name == "test-schema.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and "test-case" in doc:
                out.append(convert(path.name, doc))
    return out
