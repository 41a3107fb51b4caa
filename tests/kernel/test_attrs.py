"""The ctypes attribute structures lay out exactly like ``union bpf_attr`` and the info structs
of the system's <linux/bpf.h>, as clang computes them (fields newer than that header are
checked only by the kernel accepting them)."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess

import pytest

from pybpf.kernel import attrs

CLANG = shutil.which("clang-19") or shutil.which("clang")

# our structure -> (C type, member prefix); "" when the command's struct is anonymous in the union
LAYOUTS = {
    attrs.MapCreateAttr: ("union bpf_attr", ""),
    attrs.MapElemAttr: ("union bpf_attr", ""),
    attrs.MapBatchAttr: ("union bpf_attr", "batch."),
    attrs.ProgLoadAttr: ("union bpf_attr", ""),
    attrs.ObjPinAttr: ("union bpf_attr", ""),
    attrs.ProgAttachAttr: ("union bpf_attr", ""),
    attrs.TestRunAttr: ("union bpf_attr", "test."),
    attrs.GetIdAttr: ("union bpf_attr", ""),
    attrs.InfoAttr: ("union bpf_attr", "info."),
    attrs.ProgQueryAttr: ("union bpf_attr", "query."),
    attrs.RawTracepointOpenAttr: ("union bpf_attr", "raw_tracepoint."),
    attrs.BtfLoadAttr: ("union bpf_attr", ""),
    attrs.TaskFdQueryAttr: ("union bpf_attr", "task_fd_query."),
    attrs.LinkCreateAttr: ("union bpf_attr", "link_create."),
    attrs.LinkUpdateAttr: ("union bpf_attr", "link_update."),
    attrs.LinkDetachAttr: ("union bpf_attr", "link_detach."),
    attrs.EnableStatsAttr: ("union bpf_attr", "enable_stats."),
    attrs.IterCreateAttr: ("union bpf_attr", "iter_create."),
    attrs.ProgBindMapAttr: ("union bpf_attr", "prog_bind_map."),
    attrs.ProgInfo: ("struct bpf_prog_info", ""),
    attrs.MapInfo: ("struct bpf_map_info", ""),
    attrs.BtfInfo: ("struct bpf_btf_info", ""),
}
# members of ours that are anonymous in C (their fields are reached directly)
ANONYMOUS = {"target", "iter"}
# members whose C name differs (a union alternative we do not name)
C_NAMES = {"ProgAttachAttr.relative_fd": "relative_fd", "ProgQueryAttr.prog_cnt": "prog_cnt"}


def flatten(struct, prefix: str, base: int = 0):
    for name, ctype in struct._fields_:
        if name.startswith("_"):
            continue
        offset = base + getattr(struct, name).offset
        if isinstance(ctype, type) and issubclass(ctype, (ctypes.Structure, ctypes.Union)):
            sub = prefix if name in ANONYMOUS else f"{prefix}{name}."
            yield from flatten(ctype, sub, offset)
        else:
            yield f"{prefix}{name}", offset


def c_offsets(items: list[tuple[str, str]], binary: str) -> dict[tuple[str, str], int]:
    """offsetof() of every (C type, member) per clang; members the header lacks are dropped."""
    pending = list(items)
    for _ in range(8):
        body = "\n".join(f'printf("%zu\\n", __builtin_offsetof({t}, {m}));' for t, m in pending)
        src = f"#include <stdio.h>\n#include <linux/bpf.h>\nint main(void){{\n{body}\nreturn 0;}}\n"
        proc = subprocess.run([CLANG, "-x", "c", "-", "-o", binary], input=src,
                              capture_output=True, text=True)
        if proc.returncode == 0:
            out = subprocess.run([binary], capture_output=True, text=True)
            return dict(zip(pending, map(int, out.stdout.split())))
        bad_lines = {int(n) - 4 for n in re.findall(r"<stdin>:(\d+):\d+: error", proc.stderr)}
        if not bad_lines:
            pytest.fail(proc.stderr)
        pending = [p for i, p in enumerate(pending) if i not in bad_lines]
    pytest.fail("could not compile the offset checker")


@pytest.mark.skipif(CLANG is None, reason="clang not installed")
def test_every_attribute_field_sits_at_the_offset_clang_gives_for_linux_bpf_h(tmp_path):
    ours = {}
    for struct, (ctype, prefix) in LAYOUTS.items():
        for member, offset in flatten(struct, prefix):
            ours[(ctype, member)] = (struct.__name__, offset)
    theirs = c_offsets(list(ours), str(tmp_path / "offsets"))
    assert len(theirs) > 150, "too few fields found in the header to be a meaningful check"
    wrong = {key: (ours[key], theirs[key]) for key in theirs if ours[key][1] != theirs[key]}
    assert not wrong, wrong
