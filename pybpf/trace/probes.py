"""What each probe provider means on this machine: program type, context layout, attach target.

Tracepoint argument layouts come from tracefs format files (``events/CAT/NAME/format``), the
same source bpftrace 0.17 uses; wildcards in probe names are expanded against tracefs (and the
ELF symbol table for uprobes).
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .parser import TraceSyntaxError

#: program type per provider (kernel names)
PROG_TYPES = {
    "tracepoint": "tracepoint", "rawtracepoint": "raw_tracepoint", "kprobe": "kprobe",
    "kretprobe": "kprobe", "uprobe": "kprobe", "uretprobe": "kprobe", "profile": "perf_event",
    "interval": "perf_event", "software": "perf_event", "hardware": "perf_event",
    "BEGIN": "raw_tracepoint", "END": "raw_tracepoint", "kfunc": "tracing",
    "kretfunc": "tracing",
}

#: x86_64 ``struct pt_regs`` offsets of the argument registers and the return value
PT_REGS_ARGS = (112, 104, 96, 88, 72, 64)   # di, si, dx, cx, r8, r9
PT_REGS_RET = 80                           # ax


@dataclass(frozen=True)
class TracepointField:
    name: str
    ctype: str
    offset: int
    size: int
    signed: bool

    @property
    def is_string_pointer(self) -> bool:
        return "char *" in self.ctype or "char*" in self.ctype

    @property
    def array_len(self) -> int | None:
        m = re.search(r"\[(\d+)\]", self.ctype)
        return int(m.group(1)) if m else None


def tracefs() -> Path:
    """The tracefs mount point (the kernel engine mounts it when it is not mounted)."""
    from ..kernel.perf import ensure_tracefs
    return Path(ensure_tracefs())


_FIELD = re.compile(r"field:(?P<decl>[^;]+);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);"
                    r"\s*signed:(?P<signed>\d+);")


def tracepoint_fields(category: str, event: str) -> list[TracepointField]:
    path = tracefs() / "events" / category / event / "format"
    try:
        text = path.read_text()
    except OSError:
        raise TraceSyntaxError(f"tracepoint {category}:{event} does not exist on this kernel "
                               f"({path} is missing)") from None
    fields = []
    for m in _FIELD.finditer(text):
        decl = m.group("decl").strip()
        name_m = re.search(r"([A-Za-z_][A-Za-z_0-9]*)\s*(\[[^\]]*\])?\s*$", decl)
        if not name_m:
            continue
        name = name_m.group(1)
        ctype = (decl[:name_m.start()] + (name_m.group(2) or "")).strip()
        if name.startswith("common_"):
            continue
        fields.append(TracepointField(name, ctype, int(m.group("off")), int(m.group("size")),
                                      m.group("signed") == "1"))
    return fields


def expand_tracepoints(category: str, event: str) -> list[tuple[str, str]]:
    """Wildcard expansion of ``tracepoint:cat*:name*`` against tracefs."""
    if not any(c in category + event for c in "*?["):
        return [(category, event)]
    root = tracefs() / "events"
    out = []
    for cat in sorted(os.listdir(root)):
        if not fnmatch.fnmatchcase(cat, category) or not (root / cat).is_dir():
            continue
        for ev in sorted(os.listdir(root / cat)):
            if fnmatch.fnmatchcase(ev, event) and (root / cat / ev / "format").exists():
                out.append((cat, ev))
    return out


# --- uprobe targets ---------------------------------------------------------------------------

#: the ld.so cache's architecture tag of this machine's own libraries
_LD_ARCH = {"x86_64": "x86-64", "aarch64": "AArch64"}


def resolve_uprobe_target(target: str) -> str | None:
    """The file a uprobe's target names, found as bpftrace 0.17 finds it: a path is taken as
    it is; a bare name is an executable on ``$PATH`` (the first, ``uprobe:bash:readline``),
    else, for ``libNAME``, the first library of this machine's architecture in the dynamic
    linker's cache whose name starts with ``libNAME.so`` (``uprobe:libc:malloc`` is
    /lib/x86_64-linux-gnu/libc.so.6 here). None when nothing matches."""
    if "/" in target:
        return target
    for folder in os.environ.get("PATH", "").split(":"):
        path = os.path.join(folder or ".", target)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    if target.startswith("lib"):
        return _ld_cache_library(target + ".so")
    return None


def _ld_cache_library(prefix: str) -> str | None:
    """The first entry of ``ldconfig -p`` (the cache in its own order) named ``prefix...``
    and built for this machine's architecture."""
    import platform
    import subprocess

    arch = _LD_ARCH.get(platform.machine())
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10,
                             env={**os.environ, "PATH": os.environ.get("PATH", "") +
                                  ":/sbin:/usr/sbin"}).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        m = re.match(r"\s+(\S+) \(([^)]*)\) => (\S+)$", line)
        if m and m.group(1).startswith(prefix) and (arch is None or arch in m.group(2)):
            return m.group(3)
    return None

