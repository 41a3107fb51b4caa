"""BTF in the kernel: BPF_BTF_LOAD of an object's type information, so maps are described by
their C types (``bpftool map dump`` prints fields) and programs carry func_info/line_info (the
verifier needs them for bpf_loop callbacks and global functions, and prints C lines in its log).

The bytes come ready from the object loader (``Program.btf``: the object's .BTF with what the
kernel refuses already sanitised); here they are only handed to the kernel, with a log on
failure like program loads.
"""

from __future__ import annotations

import ctypes
import errno
import struct
import weakref

from ..errors import KernelError, KernelUnsupported
from . import syscall, uapi
from .attrs import BtfInfo, BtfLoadAttr, GetIdAttr, InfoAttr

FUNC_INFO_REC = struct.Struct("<II")      # struct bpf_func_info {insn_off, type_id}
LINE_INFO_REC = struct.Struct("<IIII")    # struct bpf_line_info {insn_off, file, line, col}


class KernelBTF:
    """A BTF object loaded into the kernel (owns the fd)."""

    def __init__(self, fd: int, log: str = ""):
        self.fd = fd
        self.log = log
        self._closer = weakref.finalize(self, syscall.close, fd)

    def close(self) -> None:
        self._closer()

    @property
    def closed(self) -> bool:
        return not self._closer.alive

    def __enter__(self) -> "KernelBTF":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def id(self) -> int:
        info = BtfInfo()
        syscall.bpf(uapi.Cmd.OBJ_GET_INFO_BY_FD,
                    InfoAttr(bpf_fd=self.fd, info_len=ctypes.sizeof(info),
                             info=ctypes.addressof(info)))
        return info.id


def load_btf(data: bytes, log_level: int = 0) -> KernelBTF:
    """BPF_BTF_LOAD; on refusal the error carries the kernel's BTF log."""
    blob = ctypes.create_string_buffer(bytes(data), max(len(data), 1))
    level = log_level
    while True:
        size = (1 << 20) if level else 0
        log = ctypes.create_string_buffer(size) if size else None
        attr = BtfLoadAttr(btf=ctypes.addressof(blob), btf_size=len(data),
                           btf_log_level=level, btf_log_size=size,
                           btf_log_buf=ctypes.addressof(log) if log is not None else 0)
        try:
            fd = syscall.bpf(uapi.Cmd.BTF_LOAD, attr)
            return KernelBTF(fd, log.value.decode(errors="replace") if log is not None else "")
        except KernelUnsupported:
            raise
        except KernelError as exc:
            text = log.value.decode(errors="replace") if log is not None else ""
            if not level:
                level = 1  # ask again with a log that says why
                continue
            last = text.strip().splitlines()[-1] if text.strip() else ""
            raise KernelError(f"the kernel rejected the BTF: "
                              f"{syscall.errno_name(exc.errno or 0)}{': ' + last if last else ''}",
                              errno=exc.errno, command="BPF_BTF_LOAD", log=text) from None


def func_info_bytes(records) -> bytes:
    return b"".join(FUNC_INFO_REC.pack(slot, type_id) for slot, type_id in records)


def line_info_bytes(records) -> bytes:
    return b"".join(LINE_INFO_REC.pack(*rec) for rec in records)


def btf_from_id(btf_id: int) -> KernelBTF:
    return KernelBTF(syscall.bpf(uapi.Cmd.BTF_GET_FD_BY_ID, GetIdAttr(start_id=btf_id)))


def kernel_has_btf() -> bool:
    """Whether loading a minimal BTF (one int type) works: kernels without BTF say EINVAL."""
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 16, 16, 5)
    types = struct.pack("<III", 1, 0x01000000, 4) + struct.pack("<I", 32)   # int, 32 bits
    strings = b"\0int\0"
    try:
        load_btf(header + types + strings).close()
        return True
    except KernelError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOTSUP):
            return False
        raise
