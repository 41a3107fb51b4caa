"""The bpf(2) door: one replaceable entry point, errors naming the command and errno."""

from __future__ import annotations

import errno

import pytest

from pybpf import isa, kernel
from pybpf.errors import KernelError, KernelUnsupported
from pybpf.kernel import attrs, syscall, uapi
from pybpf.program import Program

RET7 = Program([isa.Instruction(0xB7, 0, 0, 0, 7), isa.Instruction(0x95)])


def test_every_bpf_call_goes_through_the_replaceable_entry_point(monkeypatch):
    seen = []
    real = syscall.bpf

    def spy(cmd, attr):
        seen.append((uapi.Cmd(cmd).name, type(attr).__name__))
        return real(cmd, attr)

    monkeypatch.setattr(syscall, "bpf", spy)
    try:
        kernel.test_run(RET7, bytes(14))
    except KernelUnsupported:
        pytest.skip("bpf(2) not permitted")
    assert ("PROG_LOAD", "ProgLoadAttr") in seen
    assert ("PROG_TEST_RUN", "TestRunAttr") in seen


def test_a_refused_bpf_call_becomes_one_clear_line_about_privileges(monkeypatch):
    def deny(cmd, attr):
        raise syscall.error_for(cmd, errno.EPERM)

    monkeypatch.setattr(syscall, "bpf", deny)
    with pytest.raises(KernelUnsupported) as info:
        kernel.test_run(RET7, bytes(14))
    message = str(info.value)
    assert "\n" not in message and "CAP_BPF" in message and "root" in message


def test_errors_name_the_command_and_the_errno():
    exc = syscall.error_for(uapi.Cmd.MAP_LOOKUP_ELEM, errno.ENOENT)
    assert isinstance(exc, KernelError) and not isinstance(exc, KernelUnsupported)
    assert "BPF_MAP_LOOKUP_ELEM" in str(exc) and "ENOENT" in str(exc)
    assert exc.errno == errno.ENOENT and exc.command == "BPF_MAP_LOOKUP_ELEM"


@pytest.mark.kernel
def test_a_bad_fd_is_reported_by_the_kernel_as_ebadf():
    with pytest.raises(KernelError) as info:
        syscall.bpf(uapi.Cmd.MAP_LOOKUP_ELEM, attrs.MapElemAttr(map_fd=999999))
    assert info.value.errno == errno.EBADF and "BPF_MAP_LOOKUP_ELEM" in str(info.value)


def test_enum_names_are_the_kernels_without_prefix():
    assert uapi.prog_type("xdp") == uapi.ProgType.XDP == 6
    assert uapi.prog_type("BPF_PROG_TYPE_SCHED_CLS") == 3
    assert uapi.map_type("ringbuf") == 27 and uapi.map_type("bloom_filter") == 30
    assert uapi.attach_type("tcx_ingress") == 46
    assert uapi.Cmd.LINK_CREATE == 28 and uapi.Cmd.PROG_BIND_MAP == 35


def test_enum_values_match_the_system_header():
    """Every enum member the system's <linux/bpf.h> has carries the header's value."""
    import re
    from pathlib import Path

    header = Path("/usr/include/linux/bpf.h")
    if not header.exists():
        pytest.skip("no <linux/bpf.h>")
    text = header.read_text()
    checked = 0
    for enum_name, table, prefix in (("bpf_cmd", uapi.Cmd, "BPF_"),
                                     ("bpf_map_type", uapi.MapType, "BPF_MAP_TYPE_"),
                                     ("bpf_prog_type", uapi.ProgType, "BPF_PROG_TYPE_"),
                                     ("bpf_attach_type", uapi.AttachType, "BPF_"),
                                     ("bpf_link_type", uapi.LinkType, "BPF_LINK_TYPE_")):
        body = re.search(r"enum %s \{(.*?)\n\};" % enum_name, text, re.S).group(1)
        body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
        value = -1
        for line in body.splitlines():
            m = re.match(r"\s*(%s\w+)(?:\s*=\s*(\w+))?," % prefix, line)
            if not m or m.group(1).startswith("__") or m.group(1) == "MAX_BPF_ATTACH_TYPE":
                continue
            if m.group(2) is not None:
                if not m.group(2).isdigit():
                    continue  # an alias (BPF_PROG_RUN = BPF_PROG_TEST_RUN)
                value = int(m.group(2))
            else:
                value += 1
            name = m.group(1)[len(prefix):]
            assert table[name] == value, (enum_name, name)
            checked += 1
    assert checked > 150


def _drop_all_capabilities() -> None:
    """preexec_fn: keep uid 0 but drop every capability (CAP_BPF, CAP_SYS_ADMIN, ...) from
    the bounding set too, so exec does not hand them back to root."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)                   # PR_CAPBSET_DROP (past the last: EINVAL)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)     # _LINUX_CAPABILITY_VERSION_3, this pid
    data = (ctypes.c_uint32 * 6)()                     # effective/permitted/inheritable x 2
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


@pytest.mark.kernel
def test_without_privileges_the_cli_says_so_in_one_line(tmp_path):
    import subprocess
    import sys

    with open("/proc/sys/kernel/unprivileged_bpf_disabled") as f:
        if f.read().strip() == "0":
            pytest.skip("unprivileged bpf(2) is allowed on this machine")
    source = tmp_path / "ret.s"
    source.write_text("r0 = 1\nexit\n")
    out = subprocess.run([sys.executable, "-m", "pybpf", "run", str(source), "--engine",
                          "kernel", "--data", "00" * 14], capture_output=True, text=True,
                         preexec_fn=_drop_all_capabilities, timeout=60)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1, out.stderr
    assert "not permitted" in out.stderr and "CAP_BPF" in out.stderr


@pytest.mark.kernel
@pytest.mark.parametrize("args", [["prog", "list"], ["map", "show", "1"]])
def test_without_privileges_listing_objects_says_so_in_one_line(args):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "pybpf", *args], capture_output=True,
                         text=True, preexec_fn=_drop_all_capabilities, timeout=60)
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert "not permitted" in out.stderr and "CAP_SYS_ADMIN" in out.stderr
