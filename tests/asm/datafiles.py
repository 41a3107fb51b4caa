"""Reading bpf_conformance ``.data`` files: ``-- NAME`` lines start sections.

The ``-- asm`` section is returned with the lines before it blanked, so assembler errors carry
the line numbers of the ``.data`` file itself. Only the suite's section names end the asm
section; any other ``-- ...`` line stays in it (``invalid_unknown_directive.data`` relies on the
assembler refusing it).
"""

from __future__ import annotations

import re
from pathlib import Path

SECTIONS = {"asm", "raw", "mem", "result", "error", "c"}
_HEADER = re.compile(r"--\s+(\S+)\s*\Z")


def sections(path: Path) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    current = None
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        m = _HEADER.match(line)
        if m and m.group(1) in SECTIONS:
            current = m.group(1)
            out[current] = [""] * (number + 1) if current == "asm" else []
            continue
        if line.startswith("-- ") and current != "asm":
            current = None
            continue
        if current:
            out[current].append(line)
    return {name: "\n".join(body) + "\n" for name, body in out.items()}
