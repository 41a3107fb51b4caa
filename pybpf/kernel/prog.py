"""Kernel programs: load a :class:`pybpf.program.Program` with BPF_PROG_LOAD, run it with
BPF_PROG_TEST_RUN, read its information like ``bpftool prog show``.

Loading follows what libbpf does for a single program: create the maps the program declares,
rewrite every map reference from the program's map *index* (``PSEUDO_MAP_IDX``, pybpf's
self-contained form) to the map's *fd* (``PSEUDO_MAP_FD`` / ``PSEUDO_MAP_VALUE``), and when the
kernel refuses the program, load it again with a verifier log so the error carries the
kernel's own explanation (libbpf's retry-with-log behaviour). The log buffer grows while the
kernel answers ENOSPC.
"""

from __future__ import annotations

import ctypes
import errno
import re
import weakref
from dataclasses import dataclass, field, replace

from .. import isa
from ..errors import KernelError, KernelUnsupported, UsageError
from ..program import MapSpec, Program
from . import syscall, uapi
from .attrs import (GetIdAttr, InfoAttr, ProgInfo, ProgLoadAttr, TestRunAttr)
from .features import kernel_version_code
from .btf import func_info_bytes, line_info_bytes, load_btf
from .maps import KernelMap, _iter_ids, create_map, obj_get, obj_pin, sanitize_name

#: first verifier log buffer (grown x4 on ENOSPC up to MAX_LOG)
FIRST_LOG = 1 << 20
MAX_LOG = (1 << 30) - 1

#: program types whose section names imply an expected attach type (libbpf's section table)
EXPECTED_ATTACH = {
    "cgroup_sock_addr": "cgroup_inet4_connect",
    "cgroup_sockopt": "cgroup_getsockopt",
    "sk_lookup": "sk_lookup",
}

#: why BPF_PROG_TEST_RUN may say EINVAL, by program type (from the kernel's bpf_prog_test_run_*)
TEST_RUN_HINTS = {
    "socket_filter": "skb test runs need at least 14 bytes of data (an Ethernet header)",
    "sched_cls": "skb test runs need at least 14 bytes of data (an Ethernet header)",
    "sched_act": "skb test runs need at least 14 bytes of data (an Ethernet header)",
    "cgroup_skb": "skb test runs need at least 14 bytes of data (an Ethernet header)",
    "xdp": "xdp test runs need at least 14 bytes of data (an Ethernet header)",
    "tracepoint": "tracepoint programs cannot be test-run by the kernel",
    "kprobe": "kprobe programs cannot be test-run by the kernel",
    "perf_event": "perf_event programs cannot be test-run by the kernel",
}


@dataclass
class TestRunResult:
    """What BPF_PROG_TEST_RUN reports: r0 (32 bits, as the kernel returns it), the average
    duration per run in ns, and the data and context after the run."""

    __test__ = False

    retval: int
    duration_ns: int
    data_out: bytes = b""
    ctx_out: bytes | None = None
    #: the full 64-bit r0 of the (last) run, when the program was loaded with capture_r0
    r0: int | None = None


@dataclass
class ProgInformation:
    """``bpftool prog show`` for one program."""

    id: int
    type: str
    name: str
    tag: str
    gpl_compatible: bool
    load_time_ns: int          # boot-time ns when it was loaded
    created_by_uid: int
    xlated_bytes: int
    jited_bytes: int
    map_ids: list[int] = field(default_factory=list)
    btf_id: int = 0
    run_time_ns: int = 0
    run_cnt: int = 0
    verified_insns: int = 0
    recursion_misses: int = 0


def patch_map_refs(insns: list[isa.Instruction], fds: list[int]) -> list[isa.Instruction]:
    """Map references by index -> by fd, the form every kernel understands."""
    out = []
    for index, insn in enumerate(insns):
        if insn.opcode == isa.LDDW and insn.src in (isa.PSEUDO_MAP_IDX, isa.PSEUDO_MAP_IDX_VALUE):
            if not 0 <= insn.imm < len(fds):
                raise UsageError(f"instruction {index}: map index {insn.imm} but the program "
                                 f"declares {len(fds)} map(s)")
            src = isa.PSEUDO_MAP_FD if insn.src == isa.PSEUDO_MAP_IDX else isa.PSEUDO_MAP_VALUE
            insn = replace(insn, src=src, imm=fds[insn.imm])
        out.append(insn)
    return out


def _prog_load(attr: ProgLoadAttr, log_level: int) -> tuple[int, str, int]:
    """BPF_PROG_LOAD with a log at ``log_level``; (fd or -errno, log text, errno)."""
    size = FIRST_LOG if log_level else 0
    while True:
        buf = ctypes.create_string_buffer(size) if size else None
        attr.log_level = log_level
        attr.log_size = size
        attr.log_buf = ctypes.addressof(buf) if buf is not None else 0
        try:
            fd = syscall.bpf(uapi.Cmd.PROG_LOAD, attr)
            return fd, buf.value.decode(errors="replace") if buf is not None else "", 0
        except KernelUnsupported:
            raise
        except KernelError as exc:
            text = buf.value.decode(errors="replace") if buf is not None else ""
            if exc.errno == errno.ENOSPC and log_level and size < MAX_LOG:
                size = min(size * 4, MAX_LOG)
                continue
            if exc.errno == errno.EPERM and not text and log_level:
                raise KernelUnsupported(syscall.NOT_PERMITTED, errno=exc.errno,
                                        command="BPF_PROG_LOAD") from None
            return -1, text, exc.errno or 0


def summarize_log(log: str) -> str:
    """The kernel's reason in one line: the last log line that is not a statistic."""
    for line in reversed(log.strip().splitlines()):
        line = line.strip()
        if not line or re.match(r"(processed \d+ insns|verification time|stack depth|"
                                r"mark_precise|last_idx|regs=|parent didn't)", line):
            continue
        return line
    return ""


class KernelProgram:
    """A program loaded into the kernel (owns its fd and the maps it created)."""

    def __init__(self, fd: int, program: Program, prog_type: str, maps: list[KernelMap],
                 owned_maps: list[KernelMap], log: str = ""):
        self.fd = fd
        self.program = program
        self.name = program.name
        self.prog_type = prog_type
        self.maps = maps
        self.log = log
        self._owned = owned_maps
        #: the extra map holding r0 when loaded with capture_r0 (not among ``maps``)
        self.r0_map: KernelMap | None = None
        self._closer = weakref.finalize(self, syscall.close, fd)

    def close(self) -> None:
        self._closer()
        for m in self._owned:
            m.close()

    @property
    def closed(self) -> bool:
        return not self._closer.alive

    def __enter__(self) -> "KernelProgram":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self.fd}"
        return f"<KernelProgram {self.name!r} {self.prog_type} {state}>"

    def map(self, name: str) -> KernelMap:
        for m in self.maps:
            if m.name == name:
                return m
        raise KeyError(name)

    def test_run(self, data: bytes = b"", ctx: bytes | None = None, repeat: int = 1, *,
                 flags: int = 0, cpu: int = 0, data_size_out: int | None = None) -> TestRunResult:
        result = prog_test_run(self.fd, data, ctx, repeat, flags=flags, cpu=cpu,
                               data_size_out=data_size_out, prog_type=self.prog_type)
        if self.r0_map is not None:
            result.r0 = int.from_bytes(self.r0_map.lookup(0), "little")
        return result

    def info(self) -> ProgInformation:
        return prog_info(self.fd)

    @property
    def id(self) -> int:
        return self.info().id

    def xlated(self) -> bytes:
        """The instructions as the verifier rewrote them (``bpftool prog dump xlated``)."""
        return prog_xlated(self.fd)

    def pin(self, path: str) -> None:
        obj_pin(self.fd, path)

    def attach(self, target, **options):
        """Attach by program type (see :func:`pybpf.kernel.attach.attach`); a socket object
        as ``target`` attaches a socket filter. Returns the :class:`Link`."""
        from . import attach as hooks
        if hasattr(target, "setsockopt"):
            return hooks.attach_socket(self, target)
        return hooks.attach(self, target, **options)


def load_program(program: Program, *, prog_type: str | None = None, log_level: int = 0,
                 maps: list[KernelMap] | None = None, expected_attach_type: str | int | None = None,
                 prog_flags: int = 0, license: str | None = None, kern_version: int | None = None,
                 btf_fd: int = 0, func_info: bytes = b"", func_info_rec_size: int = 8,
                 line_info: bytes = b"", line_info_rec_size: int = 16,
                 attach_btf_id: int = 0, attach_prog_fd: int = 0,
                 ifindex: int = 0, btf_maps: bool = True, use_btf: bool = True,
                 capture_r0: bool = False) -> KernelProgram:
    """Load ``program`` into the kernel.

    Maps in ``program.maps`` are created (and closed with the program) unless ``maps`` gives
    live :class:`KernelMap` objects for them, in the same order. ``log_level`` 1 or 2 keeps the
    verifier log on success (``prog.log``); on failure the log is always fetched and carried by
    the :class:`KernelError` (``.log``), whose message ends with the kernel's reason.
    A program with BTF (``program.btf``, from an object file) is loaded with it: func_info and
    line_info records go along, and the maps it creates are described by their BTF types.
    With ``capture_r0`` the program is rewritten to keep its full 64-bit r0 (see
    :mod:`pybpf.kernel.r0`); ``test_run`` then fills ``TestRunResult.r0``.
    """
    if maps is not None and len(maps) != len(program.maps):
        raise UsageError(f"program '{program.name}' declares {len(program.maps)} map(s) but "
                         f"{len(maps)} were given")
    if capture_r0:
        from .r0 import capture_r0 as rewrite
        extra = None if maps is None else KernelMap.create(MapSpec("pybpf_r0", "array", 4, 8, 1))
        try:
            prog = load_program(
                rewrite(program), prog_type=prog_type, log_level=log_level,
                maps=None if extra is None else list(maps) + [extra],
                expected_attach_type=expected_attach_type, prog_flags=prog_flags,
                license=license, kern_version=kern_version, btf_fd=btf_fd,
                attach_btf_id=attach_btf_id, attach_prog_fd=attach_prog_fd, ifindex=ifindex,
                btf_maps=btf_maps, use_btf=use_btf)  # func/line info re-derived after the rewrite
        except BaseException:
            if extra is not None:
                extra.close()
            raise
        prog.r0_map = prog.maps.pop()
        if extra is not None:
            prog._owned.append(extra)
        prog.program = program
        return prog
    ptype_name = prog_type or program.prog_type or "socket_filter"
    ptype = uapi.prog_type(ptype_name)
    ptype_name = uapi.kernel_name(ptype)
    if expected_attach_type is None:
        expected_attach_type = getattr(program, "attach_type", None) or \
            EXPECTED_ATTACH.get(ptype_name)
    attach = uapi.attach_type(expected_attach_type) if expected_attach_type is not None else 0
    # the object's BTF: maps are described by it, func_info/line_info point into it
    btf = None
    if getattr(program, "btf", None) and use_btf:
        if not btf_fd:
            btf = load_btf(program.btf)
            btf_fd = btf.fd
        func_info = func_info or func_info_bytes(program.func_info)
        line_info = line_info or line_info_bytes(program.line_info)
    owned: list[KernelMap] = []
    if maps is None:
        try:
            for spec in program.maps:
                owned.append(create_map(spec, btf_fd=btf_fd if btf_maps else 0))
        except BaseException:
            for m in owned:
                m.close()
            if btf is not None:
                btf.close()
            raise
        maps = owned
    try:
        insns = patch_map_refs(program.insns, [m.fd for m in maps])
        code = isa.encode(insns)
        code_buf = ctypes.create_string_buffer(code, max(len(code), 1))
        lic = ctypes.create_string_buffer((license or program.license or "GPL").encode())
        func_buf = ctypes.create_string_buffer(func_info, max(len(func_info), 1))
        line_buf = ctypes.create_string_buffer(line_info, max(len(line_info), 1))
        attr = ProgLoadAttr(
            prog_type=ptype, insn_cnt=len(code) // 8, insns=ctypes.addressof(code_buf),
            license=ctypes.addressof(lic),
            kern_version=kern_version if kern_version is not None else kernel_version_code(),
            prog_flags=prog_flags, prog_name=sanitize_name(program.name or ""),
            prog_ifindex=ifindex, expected_attach_type=attach, prog_btf_fd=btf_fd,
            attach_btf_id=attach_btf_id, attach_prog_fd=attach_prog_fd)
        if btf_fd and func_info:
            attr.func_info_rec_size = func_info_rec_size
            attr.func_info = ctypes.addressof(func_buf)
            attr.func_info_cnt = len(func_info) // func_info_rec_size
        if btf_fd and line_info:
            attr.line_info_rec_size = line_info_rec_size
            attr.line_info = ctypes.addressof(line_buf)
            attr.line_info_cnt = len(line_info) // line_info_rec_size
        fd, log, err = _prog_load(attr, log_level)
        if fd < 0 and not log_level:
            # the kernel said no: ask again with a log so the error explains itself
            fd, log, err2 = _prog_load(attr, 1)
            err = err2 or err
            if fd >= 0:  # accepted the second time (should not happen): keep it
                err = 0
        if fd < 0:
            reason = summarize_log(log)
            where = f"program '{program.name}' ({ptype_name})"
            text = (f"the kernel rejected {where}: {syscall.errno_name(err)}"
                    f"{': ' + reason if reason else ''}")
            raise KernelError(text, errno=err, command="BPF_PROG_LOAD", log=log)
    except BaseException:
        for m in owned:
            m.close()
        raise
    finally:
        if btf is not None:  # the program and maps hold their own references to it
            btf.close()
    return KernelProgram(fd, program, ptype_name, maps, owned, log)


def prog_test_run(fd: int, data: bytes = b"", ctx: bytes | None = None, repeat: int = 1, *,
                  flags: int = 0, cpu: int = 0, data_size_out: int | None = None,
                  prog_type: str = "") -> TestRunResult:
    """BPF_PROG_TEST_RUN on a loaded program's fd."""
    data = bytes(data)
    din = ctypes.create_string_buffer(data, max(len(data), 1))
    out_size = data_size_out if data_size_out is not None else (len(data) + 4096 if data else 0)
    dout = ctypes.create_string_buffer(max(out_size, 1))
    attr = TestRunAttr(prog_fd=fd, data_size_in=len(data),
                       data_in=ctypes.addressof(din) if data else 0,
                       data_size_out=out_size, data_out=ctypes.addressof(dout) if out_size else 0,
                       repeat=max(repeat, 1), flags=flags, cpu=cpu)
    cin = cout = None
    if ctx is not None:
        ctx = bytes(ctx)
        cin = ctypes.create_string_buffer(ctx, max(len(ctx), 1))
        cout = ctypes.create_string_buffer(max(len(ctx), 4096))
        attr.ctx_size_in = len(ctx)
        attr.ctx_in = ctypes.addressof(cin)
        attr.ctx_size_out = len(cout)
        attr.ctx_out = ctypes.addressof(cout)
    try:
        syscall.bpf(uapi.Cmd.PROG_TEST_RUN, attr)
    except KernelUnsupported:
        raise
    except KernelError as exc:
        hint = TEST_RUN_HINTS.get(prog_type, "") if exc.errno in (errno.EINVAL, errno.ENOTSUP,
                                                                  524) else ""
        raise KernelError(f"{exc}{' -- ' + hint if hint else ''}", errno=exc.errno,
                          command=exc.command) from None
    return TestRunResult(
        retval=attr.retval, duration_ns=attr.duration,
        data_out=dout.raw[: attr.data_size_out] if out_size else b"",
        ctx_out=cout.raw[: attr.ctx_size_out] if cout is not None else None)


def test_run(program: Program, data: bytes = b"", ctx: bytes | None = None, repeat: int = 1,
             *, prog_type: str | None = None, **load_options) -> TestRunResult:
    """Load ``program``, run it once (or ``repeat`` times) and unload it."""
    with load_program(program, prog_type=prog_type, **load_options) as prog:
        return prog.test_run(data, ctx, repeat)


test_run.__test__ = False  # type: ignore[attr-defined]


def test_run_bytes(code: bytes, prog_type: str = "socket_filter", data: bytes = b"",
                   ctx: bytes | None = None) -> TestRunResult:
    """Load raw bytecode (no maps), test-run it, unload it: the smallest round trip."""
    return test_run(Program(isa.decode(code, check=False)), data, ctx, prog_type=prog_type)


test_run_bytes.__test__ = False  # type: ignore[attr-defined]


# --- information ------------------------------------------------------------------------------

def _get_prog_info(fd: int, **arrays) -> ProgInfo:
    info = ProgInfo()
    for name, value in arrays.items():
        setattr(info, name, value)
    attr = InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    syscall.bpf(uapi.Cmd.OBJ_GET_INFO_BY_FD, attr)
    return info


def prog_info(fd: int) -> ProgInformation:
    """BPF_OBJ_GET_INFO_BY_FD for a program, with its map ids."""
    first = _get_prog_info(fd)
    ids = (ctypes.c_uint32 * max(first.nr_map_ids, 1))()
    info = _get_prog_info(fd, nr_map_ids=first.nr_map_ids, map_ids=ctypes.addressof(ids)) \
        if first.nr_map_ids else first
    try:
        type_name = uapi.ProgType(info.type).name.lower()
    except ValueError:
        type_name = f"type{info.type}"
    return ProgInformation(
        id=info.id, type=type_name, name=info.name.decode(errors="replace"),
        tag=bytes(info.tag).hex(), gpl_compatible=bool(info.gpl_compatible & 1),
        load_time_ns=info.load_time, created_by_uid=info.created_by_uid,
        xlated_bytes=info.xlated_prog_len, jited_bytes=info.jited_prog_len,
        map_ids=list(ids[: info.nr_map_ids]), btf_id=info.btf_id,
        run_time_ns=info.run_time_ns, run_cnt=info.run_cnt,
        verified_insns=info.verified_insns, recursion_misses=info.recursion_misses)


def prog_xlated(fd: int) -> bytes:
    first = _get_prog_info(fd)
    buf = ctypes.create_string_buffer(max(first.xlated_prog_len, 1))
    info = _get_prog_info(fd, xlated_prog_len=first.xlated_prog_len,
                          xlated_prog_insns=ctypes.addressof(buf))
    return buf.raw[: info.xlated_prog_len]


def prog_from_id(prog_id: int) -> int:
    """A new fd for the program with this id (``BPF_PROG_GET_FD_BY_ID``)."""
    return syscall.bpf(uapi.Cmd.PROG_GET_FD_BY_ID, GetIdAttr(start_id=prog_id))


def prog_from_pin(path: str) -> int:
    return obj_get(path)


def iter_prog_ids():
    """Ids of every program in the system (``BPF_PROG_GET_NEXT_ID``)."""
    yield from _iter_ids(uapi.Cmd.PROG_GET_NEXT_ID)
