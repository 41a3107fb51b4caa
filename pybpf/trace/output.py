"""Text output exactly as bpftrace 0.17 prints it: printf, and maps at exit or on print().

The formats were read off bpftrace 0.17 itself (the tests compare with it): maps sorted by
name; a map's entries sorted by value; ``hist``/``lhist`` drawn with 52-column bars and
power-of-two labels with K/M/G/T suffixes; ``avg``/``stats``/``hist``/``lhist`` maps followed
by a blank line.
"""

from __future__ import annotations

import re
import struct
import time as _time

from .types import MapInfo, SType

_SPEC = re.compile(r"%(?P<flags>[-+ #0]*)(?P<width>\d+|\*)?(?:\.(?P<prec>\d+))?"
                   r"(?P<len>hh|h|ll|l|z|j|t)?(?P<conv>[diouxXcsp%])")


def check_format(fmt: str, arg_types: list[SType]) -> str | None:
    """A message if the printf format does not fit its arguments, else None."""
    specs = [m for m in _SPEC.finditer(fmt) if m.group("conv") != "%"]
    if len(specs) != len(arg_types):
        return (f"printf: the format has {len(specs)} conversion"
                f"{'s' * (len(specs) != 1)} but {len(arg_types)} argument"
                f"{'s' * (len(arg_types) != 1)} {'were' if len(arg_types) != 1 else 'was'} given")
    for m, t in zip(specs, arg_types):
        if m.group("conv") == "s" and (t.kind == "str" or t.display):
            continue
        if m.group("conv") == "s":
            return f"printf: %s needs a string, argument is {t}"
        if m.group("conv") != "s" and t.kind == "str":
            return f"printf: %{m.group('conv')} needs an integer, argument is a string"
    return None


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def decode_args(payload: bytes, arg_types: list[SType], symbols=None) -> list:
    """Event arguments as Python values; symbol and stack types as their text."""
    out = []
    off = 0
    for t in arg_types:
        if t.kind == "int":
            (v,) = struct.unpack_from("<q" if t.signed else "<Q", payload, off)
            off += 8
        else:
            v = payload[off:off + t.size]
            off += t.size
            if t.kind == "str":
                v = _cstr(v)
        if t.display and symbols is not None:
            v = symbols.show(t.display, v, t.frames)
        out.append(v)
    return out


def format_printf(fmt: str, args: list) -> str:
    """C printf formatting with 64-bit integers, as bpftrace does it."""
    values = iter(args)

    def convert(m: re.Match) -> str:
        conv = m.group("conv")
        if conv == "%":
            return "%"
        value = next(values)
        spec = "%" + (m.group("flags") or "") + (m.group("width") or "")
        if m.group("prec") is not None:
            spec += "." + m.group("prec")
        if conv == "s":
            return (spec + "s") % value
        if conv == "c":
            return (spec + "c") % chr(value & 0xFF)
        if conv == "p":
            return (spec + "s") % hex(value & 0xFFFF_FFFF_FFFF_FFFF)
        if conv in "uxXo":
            bits = {"hh": 8, "h": 16, None: 32}.get(m.group("len"), 64)
            value &= (1 << bits) - 1
            return (spec + ("d" if conv == "u" else conv)) % value
        bits = {"hh": 8, "h": 16, None: 32}.get(m.group("len"), 64)
        value &= (1 << bits) - 1
        if value >> (bits - 1):
            value -= 1 << bits
        return (spec + "d") % value

    return _SPEC.sub(convert, fmt)


def format_time(fmt: str) -> str:
    return _time.strftime(fmt, _time.localtime())


# --- maps --------------------------------------------------------------------------------------

def _value_text(t: SType, raw: bytes, symbols) -> str:
    if t.kind == "int":
        (v,) = struct.unpack_from("<q" if t.signed else "<Q", raw)
    else:
        v = raw[:t.size]
    if t.display:
        return symbols.show(t.display, v, t.frames) if symbols is not None else str(v)
    return str(v) if t.kind == "int" else _cstr(v)


def _key_text(info: MapInfo, key: bytes, symbols=None) -> str:
    if not info.key_types:
        return ""
    parts = []
    off = 0
    for t in info.key_types:
        parts.append(_value_text(t, key[off:off + t.size], symbols))
        off += t.size
    return "[" + ", ".join(parts) + "]"


def _user_key(info: MapInfo, key: bytes) -> bytes:
    """The user's part of a key (hist maps append the bucket index)."""
    return key[:-8] if info.value in ("hist", "lhist") else key


_SUFFIXES = ["", "K", "M", "G", "T", "P", "E"]


def _num_label(n: int) -> str:
    """A bucket bound as bpftrace writes it: whole multiples of 1024 get K, M, G, ..."""
    index = 0
    while n and n % 1024 == 0 and index < len(_SUFFIXES) - 1:
        n //= 1024
        index += 1
    return f"{n}{_SUFFIXES[index]}"


def _pow2_label(power: int) -> str:
    return _num_label(1 << power)


def _hist_label(bucket: int) -> str:
    if bucket == 0:
        return "(..., 0)"
    if bucket == 1:
        return "[0]"
    if bucket == 2:
        return "[1]"
    p = bucket - 2
    return f"[{_pow2_label(p)}, {_pow2_label(p + 1)})"


def _lhist_label(bucket: int, lo: int, hi: int, step: int) -> str:
    nbuckets = (hi - lo) // step
    if bucket == 0:
        return f"(..., {_num_label(lo)})"
    if bucket == nbuckets + 1:
        return f"[{_num_label(hi)}, ...)"
    start = lo + (bucket - 1) * step
    return f"[{_num_label(start)}, {_num_label(start + step)})"


def _bar(count: int, top: int) -> str:
    width = 52
    n = (count * width // top) if top else 0
    return "|" + "@" * n + " " * (width - n) + "|"


def _draw(rows: list[tuple[str, int]], div: int = 1) -> list[str]:
    """Histogram rows; ``div`` (print()'s third argument) divides the counts shown, while the
    bars stay those of the undivided counts, as bpftrace 0.17 draws them."""
    top = max((c for _, c in rows), default=0)
    return [f"{label:<16}{count // div:>8} {_bar(count, top)}" for label, count in rows]


def _hist_rows(info: MapInfo, buckets: dict[int, int]) -> list[tuple[str, int]]:
    if not buckets:
        return []
    if info.value == "hist":
        used = sorted(buckets)
        lo, hi = used[0], used[-1]
        return [(_hist_label(b), buckets.get(b, 0)) for b in range(lo, hi + 1)]
    lo_v, hi_v, step = info.lhist
    used = sorted(buckets)
    return [(_lhist_label(b, lo_v, hi_v, step), buckets.get(b, 0))
            for b in range(used[0], used[-1] + 1)]


def _i64(v: int) -> int:
    v &= 0xFFFF_FFFF_FFFF_FFFF
    return v - (1 << 64) if v >> 63 else v


def merge_percpu(info: MapInfo, values: list[bytes]) -> bytes:
    """One value from a per-CPU map's slots, as bpftrace merges them when it prints:
    count/sum/hist/lhist buckets summed (64-bit wrap-around); avg/stats the (count, total)
    pairs summed; min/max the least/greatest over the CPUs that have a value (their second
    word is 1; none has one after ``zero()``: 0)."""
    if info.value in ("min", "max"):
        have = [struct.unpack_from("<q", v)[0] for v in values if struct.unpack_from("<Q", v, 8)[0]]
        best = (min if info.value == "min" else max)(have) if have else 0
        return struct.pack("<qQ", best, 1 if have else 0)
    if info.value in ("avg", "stats"):
        pairs = [struct.unpack_from("<qq", v) for v in values]
        return struct.pack("<qq", _i64(sum(c for c, _ in pairs)), _i64(sum(t for _, t in pairs)))
    return struct.pack("<q", _i64(sum(struct.unpack_from("<q", v)[0] for v in values)))


def _c_div(a: int, b: int) -> int:
    """C's signed division (toward zero), as bpftrace computes an average."""
    q = abs(a) // b
    return -q if a < 0 else q


def format_map(info: MapInfo, entries: list[tuple[bytes, bytes]], symbols=None, *,
               top: int = 0, div: int = 0) -> str:
    """One map's text as bpftrace prints it (entries: raw key and value bytes). A map
    without entries is an empty line, as bpftrace 0.17 prints it (at exit and by print()).

    ``top`` and ``div`` are print()'s: only the ``top`` greatest entries (histograms: by their
    total count), values divided by ``div`` (0 or 1: as they are); a stats() map ignores both,
    as bpftrace does."""
    if not entries:  # avg and stats maps add their blank line even so
        return "\n\n" if info.value in ("avg", "stats") else "\n"
    if info.value == "stats":
        top = div = 0
    div = div or 1
    name = "@" + info.name
    lines: list[str] = []
    if info.value in ("hist", "lhist"):
        groups: dict[bytes, dict[int, int]] = {}
        for key, value in entries:
            (bucket,) = struct.unpack_from("<Q", key, len(key) - 8)
            (count,) = struct.unpack_from("<Q", value)
            groups.setdefault(_user_key(info, key), {})[bucket] = count
        for ukey in _top(sorted(groups, key=lambda k: sum(groups[k].values())), top):
            lines.append(f"{name}{_key_text(info, ukey, symbols)}: ")
            lines.extend(_draw(_hist_rows(info, groups[ukey]), div))
            lines.append("")
        return "\n".join(lines) + ("\n" if lines else "")
    decoded = []
    for key, value in entries:
        if info.value in ("avg", "stats"):
            count, total = struct.unpack_from("<qq", value)
            avg = _c_div(total, count) if count > 0 else 0
            text = (str(_c_div(avg, div)) if info.value == "avg"
                    else f"count {count}, average {avg}, total {total}")
            decoded.append((avg, f"{name}{_key_text(info, key, symbols)}: {text}"))
        elif info.value == "str" or info.value_type.display:
            text = _value_text(info.value_type, value, symbols)
            decoded.append((0, f"{name}{_key_text(info, key, symbols)}: {text}"))
        else:
            (v,) = struct.unpack_from("<q", value)
            decoded.append((v, f"{name}{_key_text(info, key, symbols)}: {_c_div(v, div)}"))
    decoded.sort(key=lambda item: item[0])
    lines = [text for _, text in _top(decoded, top)]
    if info.value in ("avg", "stats") and lines:
        lines.append("")
    return "\n".join(lines) + ("\n" if lines else "")


def _top(items: list, top: int) -> list:
    """The last ``top`` of ``items`` (sorted ascending: the greatest), or all when 0."""
    return items[-top:] if top and len(items) > top else items
