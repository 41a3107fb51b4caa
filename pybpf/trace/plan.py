"""A compiled script as plain data, and the on-disk cache of it.

A *plan* is what the runtime needs to start a script -- the maps to create, each probe's
bytecode (already encoded, with the offsets of its map references), where each probe attaches,
and, pickled apart, the metadata that decodes events and prints maps. It holds only builtin
types, so it is stored with :mod:`marshal` and read back without importing the parser, the
compiler, LLVM, ``pybpf.program`` or the ELF/BTF readers: a script run a second time starts
with a few file reads and the bpf(2) calls (bpftrace's start-up is the target).

The cache lives in ``$PYBPF_TRACE_CACHE`` or ``~/.cache/pybpf/trace`` (``PYBPF_TRACE_CACHE=0``
turns it off). Its key is everything a compilation depends on: the script and its name (in the
line info), pybpf's version, the sources a compilation runs through (trace/, elf/, btf/,
``isa.py``, ``program.py``: size and mtime), the Python version (marshal's format) and the
kernel release (tracepoint layouts, BTF); wildcard expansions are checked on every hit
(:func:`wildcards_hold`). pybpf's verifier checks
every compilation before it is loaded; its verdict on each probe is stored in the plan
(``verdicts``: accepted, pc, explanation), so a cache hit -- the same script, pybpf and
kernel -- reuses it instead of verifying again (the verifier's own sources are not in the
key: a verdict only ever serves the explanation of a kernel refusal).
"""

from __future__ import annotations

import marshal
import os
import sys

FORMAT = 3
CACHE_ENV = "PYBPF_TRACE_CACHE"
#: lddw pseudo sources: pybpf's map-by-index form -> the kernel's map-by-fd form
_PSEUDO_BY_FD = {5: 1, 6: 2}   # PSEUDO_MAP_IDX -> PSEUDO_MAP_FD, _IDX_VALUE -> _VALUE
LDDW = 0x18


def make_plan(compiled) -> dict:
    """The plan of a :class:`pybpf.trace.build.CompiledScript`."""
    from .. import isa

    rows = [(s.name, s.type, s.key_size, s.value_size, s.max_entries)
            for s in compiled.map_specs]
    programs = [(name, prog.prog_type, isa.encode(prog.insns), prog.license or "GPL", ap)
                for name, prog, ap in compiled.programs]
    return assemble(compiled.source_name, rows, programs, compiled.unit, compiled.wildcards)


def assemble(source_name: str, map_rows: list, programs: list, unit, wildcards: list) -> dict:
    """A plan from its parts: ``map_rows`` (name, type, key, value, max entries) in index
    order, ``programs`` (name, program type, bytecode, license, attach point) per probe, the
    compile unit (its metadata is pickled) and what the wildcards matched."""
    from ..kernel import uapi

    maps = [(name, kind, int(uapi.map_type(kind)), key, value, entries)
            for name, kind, key, value, entries in map_rows]
    plans = []
    for name, prog_type, code, license_, ap in programs:
        plans.append({
            "name": name, "prog_type": prog_type,
            "ptype": int(uapi.prog_type(prog_type)), "insns": code,
            "refs": map_references(code), "license": license_, "provider": ap.provider,
            "target": ap.target, "func": ap.func, "unit": ap.unit, "freq": ap.freq,
            "raw": ap.raw, "line": ap.line, "col": ap.col})
    import pickle

    meta = pickle.dumps((unit.maps, unit.formats, unit.stack_index),
                        protocol=pickle.HIGHEST_PROTOCOL)
    return {"format": FORMAT, "source_name": source_name, "maps": maps,
            "programs": plans, "meta": meta, "wildcards": wildcards}


def map_references(code: bytes) -> list[tuple[int, int, int]]:
    """(slot, map index, the kernel's pseudo source) of every map reference in ``code``:
    the ``lddw`` instructions by map index that :func:`patched_insns` turns into fds."""
    refs = []
    slot, end = 0, len(code) // 8
    while slot < end:
        at = slot * 8
        if code[at] == LDDW:
            src = code[at + 1] >> 4
            if src in _PSEUDO_BY_FD:
                refs.append((slot, int.from_bytes(code[at + 4:at + 8], "little", signed=True),
                             _PSEUDO_BY_FD[src]))
            slot += 2
        else:
            slot += 1
    return refs


def file_stamp(path: str) -> list:
    """(size, mtime) of a file, [] when it cannot be read: a binary's symbols change with it."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    return [st.st_size, st.st_mtime_ns]


def wildcards_hold(plan: dict) -> bool:
    """Whether every wildcard of the script still matches what it matched when compiled:
    the same tracepoints in tracefs (a module may have added some), the same binary for a
    uprobe wildcard. bpftrace expands wildcards on every run; a cached plan must not be
    staler than that."""
    wildcards = plan.get("wildcards") or []
    if not wildcards:
        return True
    import fnmatch

    from ..kernel.perf import ensure_tracefs

    for kind, target, func, matched in wildcards:
        if kind == "target":  # a bare uprobe target: the same file on $PATH / in ld.so.cache
            from .probes import resolve_uprobe_target
            if resolve_uprobe_target(target) != matched:
                return False
            continue
        if kind == "uprobe":
            if file_stamp(target) != matched:
                return False
            continue
        root = os.path.join(ensure_tracefs(), "events")
        found = []
        for cat in sorted(os.listdir(root)):
            if not fnmatch.fnmatchcase(cat, target) or not os.path.isdir(os.path.join(root, cat)):
                continue
            for ev in sorted(os.listdir(os.path.join(root, cat))):
                if fnmatch.fnmatchcase(ev, func) and \
                        os.path.exists(os.path.join(root, cat, ev, "format")):
                    found.append([cat, ev])
        if found != matched:
            return False
    return True


def patched_insns(program: dict, map_fds: list[int]) -> bytes:
    """The probe's bytecode with every map reference turned into the live map's fd."""
    code = bytearray(program["insns"])
    for slot, index, src in program["refs"]:
        at = slot * 8
        code[at + 1] = (code[at + 1] & 0x0F) | (src << 4)
        code[at + 4:at + 8] = map_fds[index].to_bytes(4, "little", signed=True)
    return bytes(code)


def load_meta(plan: dict):
    """(maps by name, printf formats, stack map index): unpickled only when events or map
    printing need them."""
    import pickle

    return pickle.loads(plan["meta"])


def cache_dir() -> str | None:
    """Where compiled scripts are kept: $PYBPF_TRACE_CACHE, else ~/.cache/pybpf/trace;
    PYBPF_TRACE_CACHE=0 turns the cache off."""
    where = os.environ.get(CACHE_ENV)
    if where == "0":
        return None
    if not where:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                ".cache")
        where = os.path.join(base, "pybpf", "trace")
    return where


#: what a compilation runs through, below the pybpf package: its bytes depend on them
_SOURCES = ("trace", "elf", "btf", "isa.py", "program.py")


def _sources_stamp() -> str:
    """Size and mtime of every module a compilation runs through."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parts = []
    for sub in _SOURCES:
        path = os.path.join(package, sub)
        try:
            if sub.endswith(".py"):
                st = os.stat(path)
                parts.append(f"{sub}:{st.st_size}:{st.st_mtime_ns}")
                continue
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.endswith(".py"):
                st = entry.stat()
                parts.append(f"{sub}/{entry.name}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)


def cache_key(source: str, filename: str) -> str:
    try:
        from _blake2 import blake2b  # the builtin module: hashlib would load OpenSSL
    except ImportError:  # pragma: no cover - Pythons built without it
        from hashlib import blake2b
    from .. import __version__

    h = blake2b(digest_size=20)
    for part in (source, filename, __version__, os.uname().release, sys.version,
                 str(FORMAT), _sources_stamp()):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


def read_any(path: str):
    """What :func:`write` stored at ``path``, or None when missing or unreadable."""
    try:
        with open(path, "rb") as fh:
            return marshal.load(fh)
    except (OSError, EOFError, ValueError, TypeError):
        return None


def read(path: str) -> dict | None:
    """A stored plan, or None when missing or unreadable (it is then compiled again)."""
    plan = read_any(path)
    if isinstance(plan, dict) and plan.get("format") == FORMAT:
        return plan
    return None


def write(path: str, data) -> None:
    """Store whole (a temporary file renamed, so a concurrent reader never sees half of it);
    a read-only home just runs without caching."""
    import tempfile

    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            marshal.dump(data, fh)
        os.replace(tmp, path)
    except OSError:
        pass
