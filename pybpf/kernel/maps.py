"""Kernel maps: a live BPF map in the running kernel behind the same dict-like API as VM maps.

A :class:`KernelMap` owns one map file descriptor. It is made from a :class:`pybpf.program.MapSpec`
(:meth:`KernelMap.create`), from an fd, an id or a bpffs pin. Element operations are the bpf(2)
commands of the same name (``BPF_MAP_LOOKUP_ELEM`` ...), batch operations use the ``*_BATCH``
commands, and failures raise :class:`pybpf.errors.MapError` carrying the kernel's errno, exactly
what the VM's maps raise for the same misuse -- which is what the differential tests compare.

Keys and values are ``bytes`` of the map's sizes; an ``int`` is accepted and packed
little-endian to the size. Per-CPU maps read and write one value per *possible* CPU, each slot
padded to 8 bytes as the kernel lays them out; :meth:`lookup` returns a list for them. Queue
and stack maps have no key: use :meth:`push`, :meth:`pop` and :meth:`peek`.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import mmap as _mmap
import os
import re
import weakref
from dataclasses import dataclass
from typing import Iterator

from ..errors import KernelError, KernelUnsupported, MapError
from ..program import MapSpec
from . import syscall, uapi
from .attrs import (GetIdAttr, InfoAttr, MapBatchAttr, MapCreateAttr, MapElemAttr, MapInfo,
                    ObjPinAttr)
from .features import num_possible_cpus

PERCPU_TYPES = {"PERCPU_HASH", "PERCPU_ARRAY", "LRU_PERCPU_HASH", "PERCPU_CGROUP_STORAGE"}
KEYLESS_TYPES = {"QUEUE", "STACK", "BLOOM_FILTER"}
ARRAY_TYPES = {"ARRAY", "PERCPU_ARRAY", "PROG_ARRAY", "PERF_EVENT_ARRAY", "CGROUP_ARRAY",
               "ARRAY_OF_MAPS"}
#: where bpffs is mounted (``mount -t bpf bpf /sys/fs/bpf``)
BPFFS = "/sys/fs/bpf"
BPF_FS_MAGIC = 0xCAFE4A11


def sanitize_name(name: str) -> bytes:
    """The kernel accepts ``[A-Za-z0-9_.]`` in object names, at most 15 characters."""
    return re.sub(r"[^A-Za-z0-9_.]", "_", name)[: uapi.OBJ_NAME_LEN - 1].encode()


def _map_error(exc: KernelError, what: str) -> MapError:
    if isinstance(exc, KernelUnsupported):
        raise exc
    return MapError(f"{what}: {syscall.errno_name(exc.errno or 0)} "
                    f"({os.strerror(exc.errno or 0)})", errno=exc.errno)


@dataclass
class MapInformation:
    """What ``BPF_OBJ_GET_INFO_BY_FD`` says about a map (``bpftool map show``)."""

    id: int
    type: str
    name: str
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int
    map_extra: int


def map_info(fd: int) -> MapInformation:
    info = MapInfo()
    attr = InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    syscall.bpf(uapi.Cmd.OBJ_GET_INFO_BY_FD, attr)
    try:
        type_name = uapi.MapType(info.type).name.lower()
    except ValueError:
        type_name = f"type{info.type}"
    return MapInformation(info.id, type_name, info.name.decode(errors="replace"), info.key_size,
                          info.value_size, info.max_entries, info.map_flags, info.btf_id,
                          info.btf_key_type_id, info.btf_value_type_id, info.map_extra)


class KernelMap:
    """A map living in the kernel, addressed through its fd."""

    def __init__(self, fd: int, spec: MapSpec):
        self.fd = fd
        self.spec = spec
        self.name = spec.name
        self.type = spec.type
        self.key_size = spec.key_size
        self.value_size = spec.value_size
        self.max_entries = spec.max_entries
        self.flags = spec.flags
        kind = uapi.map_type(spec.type).name
        self.percpu = kind in PERCPU_TYPES
        self.ncpus = num_possible_cpus() if self.percpu else 1
        self._slot = (self.value_size + 7) & ~7 if self.percpu else self.value_size
        self._closer = weakref.finalize(self, syscall.close, fd)
        self._mmaps: list[_mmap.mmap] = []

    # --- making one ---------------------------------------------------------------------------

    @classmethod
    def create(cls, spec: MapSpec, *, btf_fd: int = 0, inner_map_fd: int = 0,
               numa_node: int | None = None) -> "KernelMap":
        """Create the map ``spec`` describes (and fill in ``spec.contents``)."""
        kind = uapi.map_type(spec.type)
        max_entries = spec.max_entries
        if kind.name == "PERF_EVENT_ARRAY" and max_entries == 0:
            max_entries = num_possible_cpus()
        inner = None
        if spec.inner is not None and not inner_map_fd:
            inner = cls.create(spec.inner)
            inner_map_fd = inner.fd
        attr = MapCreateAttr(map_type=kind, key_size=spec.key_size, value_size=spec.value_size,
                             max_entries=max_entries, map_flags=spec.flags,
                             inner_map_fd=inner_map_fd, map_name=sanitize_name(spec.name),
                             map_extra=getattr(spec, "map_extra", 0))
        if numa_node is not None:
            attr.numa_node = numa_node
            attr.map_flags |= uapi.F_NUMA_NODE
        if btf_fd and (spec.btf_key_type_id or spec.btf_value_type_id):
            attr.btf_fd = btf_fd
            attr.btf_key_type_id = spec.btf_key_type_id
            attr.btf_value_type_id = spec.btf_value_type_id
        try:
            fd = syscall.bpf(uapi.Cmd.MAP_CREATE, attr)
        except KernelUnsupported:
            raise
        except KernelError as exc:
            hint = _CREATE_HINTS.get((kind.name, exc.errno), "")
            raise MapError(f"cannot create map '{spec.name}' ({spec.type}, key={spec.key_size} "
                           f"value={spec.value_size} max_entries={max_entries} "
                           f"flags={spec.flags:#x}): {syscall.errno_name(exc.errno or 0)}"
                           f"{' -- ' + hint if hint else ''}", errno=exc.errno) from None
        finally:
            if inner is not None:
                inner.close()
        actual = dataclasses.replace(spec, max_entries=max_entries, contents=list(spec.contents))
        kmap = cls(fd, actual)
        for key, value in spec.contents:
            kmap.update(key, value)
        return kmap

    @classmethod
    def from_fd(cls, fd: int) -> "KernelMap":
        """Adopt an fd (it is closed with the map): the spec is read back from the kernel."""
        info = map_info(fd)
        return cls(fd, MapSpec(info.name, info.type, info.key_size, info.value_size,
                               info.max_entries, info.flags))

    @classmethod
    def from_id(cls, map_id: int) -> "KernelMap":
        fd = syscall.bpf(uapi.Cmd.MAP_GET_FD_BY_ID, GetIdAttr(start_id=map_id))
        return cls.from_fd(fd)

    @classmethod
    def from_pin(cls, path: str) -> "KernelMap":
        return cls.from_fd(obj_get(path))

    # --- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        for m in self._mmaps:
            try:
                m.close()
            except BufferError:  # a caller still holds a memoryview; the mapping stays valid
                pass
        self._mmaps.clear()
        self._closer()

    @property
    def closed(self) -> bool:
        return not self._closer.alive

    def __enter__(self) -> "KernelMap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self.fd}"
        return (f"<KernelMap {self.name!r} {self.type} key={self.key_size} "
                f"value={self.value_size} max_entries={self.max_entries} {state}>")

    def info(self) -> MapInformation:
        return map_info(self.fd)

    @property
    def id(self) -> int:
        return self.info().id

    # --- packing ------------------------------------------------------------------------------

    def _key(self, key) -> ctypes.Array | None:
        if self.key_size == 0:
            if key not in (None, b""):
                raise MapError(f"map '{self.name}' has no keys ({self.type})", errno=errno.EINVAL)
            return None
        return ctypes.create_string_buffer(_pack(key, self.key_size, "key", self.name),
                                           self.key_size)

    def _value_size_total(self) -> int:
        return self._slot * self.ncpus

    def _value(self, value) -> ctypes.Array:
        if self.percpu:
            values = value if isinstance(value, (list, tuple)) else [value] * self.ncpus
            if len(values) != self.ncpus:
                raise MapError(f"per-CPU map '{self.name}' needs {self.ncpus} values, "
                               f"got {len(values)}", errno=errno.EINVAL)
            data = b"".join(_pack(v, self.value_size, "value", self.name).ljust(self._slot, b"\0")
                            for v in values)
        else:
            data = _pack(value, self.value_size, "value", self.name)
        return ctypes.create_string_buffer(data, max(len(data), 1))

    def _unpack(self, buf) -> bytes | list[bytes]:
        raw = buf.raw
        if self.percpu:
            return [raw[i * self._slot: i * self._slot + self.value_size]
                    for i in range(self.ncpus)]
        return raw[: self.value_size]

    def _elem(self, cmd, key, value_buf, flags: int, what: str) -> None:
        attr = MapElemAttr(map_fd=self.fd, key=_addr(key), value=_addr(value_buf), flags=flags)
        try:
            syscall.bpf(cmd, attr)
        except KernelError as exc:
            raise _map_error(exc, f"{what} in map '{self.name}'") from None

    # --- element operations (the VM map API) --------------------------------------------------

    def lookup(self, key=None, flags: int = 0) -> bytes | list[bytes]:
        """The value at ``key`` (a list per CPU for per-CPU maps); MapError(ENOENT) when absent,
        as bpf(2) answers (``get`` and ``in`` are the forgiving forms)."""
        kbuf = self._key(key)
        vbuf = ctypes.create_string_buffer(max(self._value_size_total(), 1))
        self._elem(uapi.Cmd.MAP_LOOKUP_ELEM, kbuf, vbuf, flags, "lookup")
        return self._unpack(vbuf)

    def _lookup_or_none(self, key) -> bytes | list[bytes] | None:
        try:
            return self.lookup(key)
        except MapError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    def update(self, key, value, flags: int = uapi.ANY) -> None:
        """Insert or replace (``flags``: ANY, NOEXIST, EXIST, F_LOCK as the kernel takes them)."""
        self._elem(uapi.Cmd.MAP_UPDATE_ELEM, self._key(key), self._value(value), flags, "update")

    def delete(self, key) -> None:
        """Remove ``key``; MapError(ENOENT) when it is absent, as the kernel answers."""
        self._elem(uapi.Cmd.MAP_DELETE_ELEM, self._key(key), None, 0, "delete")

    def lookup_and_delete(self, key=None, flags: int = 0) -> bytes | list[bytes]:
        kbuf = self._key(key)
        vbuf = ctypes.create_string_buffer(max(self._value_size_total(), 1))
        self._elem(uapi.Cmd.MAP_LOOKUP_AND_DELETE_ELEM, kbuf, vbuf, flags, "lookup_and_delete")
        return self._unpack(vbuf)

    def get_next_key(self, key=None) -> bytes:
        """The key after ``key`` (the first key for None or a key not in the map);
        MapError(ENOENT) after the last one."""
        kbuf = None if key is None else self._key(key)
        nbuf = ctypes.create_string_buffer(max(self.key_size, 1))
        self._elem(uapi.Cmd.MAP_GET_NEXT_KEY, kbuf, nbuf, 0, "get_next_key")
        return nbuf.raw[: self.key_size]

    def _next_or_none(self, key) -> bytes | None:
        try:
            return self.get_next_key(key)
        except MapError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    # queue / stack / bloom filter
    def push(self, value, flags: int = uapi.ANY) -> None:
        self._elem(uapi.Cmd.MAP_UPDATE_ELEM, None, self._value(value), flags, "push")

    def pop(self) -> bytes:
        """Take the next element (MapError ENOENT when empty)."""
        return self.lookup_and_delete(None)  # type: ignore[return-value]

    def peek(self) -> bytes:
        return self.lookup(None)  # type: ignore[return-value]

    def freeze(self) -> None:
        """Make the map read-only for user space (``BPF_MAP_FREEZE``); programs may still write."""
        try:
            syscall.bpf(uapi.Cmd.MAP_FREEZE, MapElemAttr(map_fd=self.fd))
        except KernelError as exc:
            raise _map_error(exc, f"freeze map '{self.name}'") from None

    # --- dict-like API ------------------------------------------------------------------------

    def iter_keys(self) -> Iterator[bytes]:
        key = self._next_or_none(None)
        seen = 0
        while key is not None:
            yield key
            seen += 1
            if seen > self.max_entries * 2 + 16:  # a hash being rewritten under us: stop
                return
            key = self._next_or_none(key)

    def iter_items(self) -> Iterator[tuple[bytes, bytes | list[bytes]]]:
        for key in self.iter_keys():
            value = self._lookup_or_none(key)
            if value is not None:  # deleted meanwhile
                yield key, value

    def keys(self) -> list[bytes]:
        return list(self.iter_keys())

    def __iter__(self) -> Iterator[bytes]:
        return self.iter_keys()

    def items(self) -> list[tuple[bytes, bytes | list[bytes]]]:
        return list(self.iter_items())

    def values(self) -> list[bytes | list[bytes]]:
        return [value for _, value in self.iter_items()]

    def __getitem__(self, key):
        value = self._lookup_or_none(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key, value) -> None:
        self.update(key, value)

    def __delitem__(self, key) -> None:
        try:
            self.delete(key)
        except MapError as exc:
            if exc.errno == errno.ENOENT:
                raise KeyError(key) from None
            raise

    def __contains__(self, key) -> bool:
        return self._lookup_or_none(key) is not None

    def __len__(self) -> int:
        return sum(1 for _ in self.iter_keys())

    def get(self, key, default=None):
        value = self._lookup_or_none(key)
        return default if value is None else value

    def clear(self) -> None:
        for key in self.keys():
            try:
                self.delete(key)
            except MapError:
                pass

    # --- batch operations ---------------------------------------------------------------------

    def lookup_batch(self, start: bytes | None = None, count: int | None = None,
                     delete: bool = False, *, batch_size: int = 256, flags: int = 0
                     ) -> tuple[list[tuple[bytes, bytes | list[bytes]]], bytes | None]:
        """Elements through ``BPF_MAP_LOOKUP_BATCH`` (``..._AND_DELETE_BATCH`` with ``delete``):
        at least ``count`` of them if there are (all for None; the kernel returns whole hash
        buckets, so a call may give a few more), ``batch_size`` per call, resuming from the
        token ``start`` a previous call returned. Returns (pairs, token or None at the end);
        the token is the kernel's opaque batch position, as in the VM maps' API."""
        cmd = uapi.Cmd.MAP_LOOKUP_AND_DELETE_BATCH if delete else uapi.Cmd.MAP_LOOKUP_BATCH
        vsize = self._value_size_total()
        token_size = max(self.key_size, 8)
        in_batch = ctypes.create_string_buffer(token_size)
        out_batch = ctypes.create_string_buffer(token_size)
        if start is not None:
            ctypes.memmove(in_batch, bytes(start)[:token_size], min(len(start), token_size))
        out: list = []
        first = start is None
        while count is None or len(out) < count:
            # a hash bucket is never split: ask for whole batches and grow on ENOSPC
            want = batch_size
            keys = ctypes.create_string_buffer(max(self.key_size * want, 1))
            values = ctypes.create_string_buffer(max(vsize * want, 1))
            attr = MapBatchAttr(in_batch=0 if first else ctypes.addressof(in_batch),
                                out_batch=ctypes.addressof(out_batch),
                                keys=ctypes.addressof(keys), values=ctypes.addressof(values),
                                count=want, map_fd=self.fd, elem_flags=flags)
            done = False
            try:
                syscall.bpf(cmd, attr)
            except KernelError as exc:
                if exc.errno == errno.ENOSPC and attr.count == 0 and batch_size < (1 << 20):
                    batch_size *= 4  # the next bucket holds more than a batch
                    continue
                if exc.errno != errno.ENOENT:
                    raise _map_error(exc, f"{cmd.name.lower()} on map '{self.name}'") from None
                done = True
            kraw, vraw = keys.raw, values.raw
            for i in range(attr.count):
                v = ctypes.create_string_buffer(vraw[i * vsize:(i + 1) * vsize], vsize)
                out.append((kraw[i * self.key_size:(i + 1) * self.key_size], self._unpack(v)))
            if done:
                return out, None
            ctypes.memmove(in_batch, out_batch, token_size)
            first = False
        return out, in_batch.raw

    def update_batch(self, items, flags: int = uapi.ANY) -> int:
        """Write many elements in one ``BPF_MAP_UPDATE_BATCH``; returns how many were written."""
        items = list(items.items() if isinstance(items, dict) else items)
        if not items:
            return 0
        keys = b"".join(_pack(k, self.key_size, "key", self.name) for k, _ in items)
        values = b"".join(self._value(v).raw[: self._value_size_total()] for _, v in items)
        kbuf = ctypes.create_string_buffer(keys, len(keys))
        vbuf = ctypes.create_string_buffer(values, max(len(values), 1))
        attr = MapBatchAttr(keys=ctypes.addressof(kbuf), values=ctypes.addressof(vbuf),
                            count=len(items), map_fd=self.fd, elem_flags=flags)
        try:
            syscall.bpf(uapi.Cmd.MAP_UPDATE_BATCH, attr)
        except KernelError as exc:
            raise _map_error(exc, f"update_batch on map '{self.name}' (after {attr.count} "
                                  f"elements)") from None
        return attr.count

    def delete_batch(self, keys) -> int:
        """Delete many keys in one ``BPF_MAP_DELETE_BATCH``; returns how many were deleted."""
        keys = list(keys)
        if not keys:
            return 0
        data = b"".join(_pack(k, self.key_size, "key", self.name) for k in keys)
        kbuf = ctypes.create_string_buffer(data, len(data))
        attr = MapBatchAttr(keys=ctypes.addressof(kbuf), count=len(keys), map_fd=self.fd)
        try:
            syscall.bpf(uapi.Cmd.MAP_DELETE_BATCH, attr)
        except KernelError as exc:
            raise _map_error(exc, f"delete_batch on map '{self.name}' (after {attr.count} "
                                  f"elements)") from None
        return attr.count

    # --- pinning and memory mapping -----------------------------------------------------------

    def pin(self, path: str) -> None:
        """Pin the map in bpffs at ``path`` (bpffs is mounted at /sys/fs/bpf if needed)."""
        obj_pin(self.fd, path)

    def mmap(self) -> _mmap.mmap:
        """The values of an ``F_MMAPABLE`` array map as shared memory (writable unless frozen).

        Element ``i`` is at ``i * round_up(value_size, 8)``; the mapping closes with the map."""
        if uapi.map_type(self.type).name != "ARRAY" or not self.flags & uapi.F_MMAPABLE:
            raise MapError(f"map '{self.name}' cannot be memory-mapped: only array maps created "
                           "with flags=F_MMAPABLE (0x400) can", errno=errno.EINVAL)
        size = ((self.value_size + 7) & ~7) * self.max_entries
        size = (size + _mmap.PAGESIZE - 1) & ~(_mmap.PAGESIZE - 1)
        try:
            m = _mmap.mmap(self.fd, size, _mmap.MAP_SHARED, _mmap.PROT_READ | _mmap.PROT_WRITE)
        except PermissionError:
            m = _mmap.mmap(self.fd, size, _mmap.MAP_SHARED, _mmap.PROT_READ)
        self._mmaps.append(m)
        return m


_CREATE_HINTS = {
    ("RINGBUF", errno.EINVAL): "a ring buffer has key=0 value=0 and max_entries a power-of-two "
                               "multiple of the page size",
    ("LPM_TRIE", errno.EINVAL): "an lpm_trie needs flags=F_NO_PREALLOC (1) and a key of "
                                "4-byte prefix length + data",
    ("QUEUE", errno.EINVAL): "queue and stack maps have key=0",
    ("STACK", errno.EINVAL): "queue and stack maps have key=0",
    ("HASH", errno.E2BIG): "key or value too large",
}


def _pack(value, size: int, what: str, name: str) -> bytes:
    if isinstance(value, int):
        try:
            return value.to_bytes(size, "little", signed=value < 0)
        except OverflowError:
            raise MapError(f"{what} {value} does not fit in {size} bytes (map '{name}')",
                           errno=errno.EINVAL) from None
    if isinstance(value, ctypes.Structure | ctypes.Array):
        value = bytes(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if len(data) != size:
            raise MapError(f"{what} of map '{name}' must be {size} bytes, got {len(data)}",
                           errno=errno.EINVAL)
        return data
    raise MapError(f"{what} of map '{name}' must be bytes or int, not {type(value).__name__}",
                   errno=errno.EINVAL)


def _addr(buf) -> int:
    return 0 if buf is None else ctypes.addressof(buf)


#: MapSpec.pinning value asking for a pin under the map's name (libbpf's LIBBPF_PIN_BY_NAME)
PIN_BY_NAME = 1


def create_map(spec: MapSpec, *, btf_fd: int = 0, pin_root: str = BPFFS) -> KernelMap:
    """Create a map the way an object loader needs it.

    * with BTF when the spec has BTF type ids, and without it when the kernel refuses the BTF
      description (libbpf's fallback: the map works the same, only tools see raw bytes);
    * read-only data (``.rodata``, ``.kconfig``: flags include F_RDONLY_PROG) is frozen once
      its contents are written, so the verifier may treat it as constant;
    * ``pinning`` by name reuses the map pinned at ``pin_root/NAME`` or pins the new one there.
    """
    path = os.path.join(pin_root, spec.name) if spec.pinning == PIN_BY_NAME else None
    if path is not None and os.path.exists(path):
        kmap = KernelMap.from_pin(path)
        if (kmap.key_size, kmap.value_size, kmap.max_entries) != \
                (spec.key_size, spec.value_size, spec.max_entries) or \
                uapi.map_type(kmap.type) != uapi.map_type(spec.type):
            kmap.close()
            raise MapError(f"map '{spec.name}' pinned at {path} does not match its definition "
                           "(type, key, value or max_entries differ)", errno=errno.EINVAL)
        return kmap
    try:
        kmap = KernelMap.create(spec, btf_fd=btf_fd)
    except MapError:
        if not btf_fd or not (spec.btf_key_type_id or spec.btf_value_type_id):
            raise
        kmap = KernelMap.create(spec)
    if spec.flags & uapi.F_RDONLY_PROG and spec.contents:
        try:
            kmap.freeze()
        except MapError:
            kmap.close()
            raise
    if path is not None:
        try:
            kmap.pin(path)
        except KernelError:
            kmap.close()
            raise
    return kmap


# --- bpffs ------------------------------------------------------------------------------------

def ensure_bpffs(path: str = BPFFS) -> None:
    """Mount bpffs at ``path`` unless a bpffs is already there (needs CAP_SYS_ADMIN)."""
    st = os.statvfs(path) if os.path.isdir(path) else None
    if st is not None and _is_bpffs(path):
        return
    os.makedirs(path, exist_ok=True)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"bpf", path.encode(), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise KernelError(f"cannot mount bpffs at {path}: {os.strerror(err)}", errno=err,
                          command="mount")


def _is_bpffs(path: str) -> bool:
    class Statfs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_long * 15)]

    libc = ctypes.CDLL(None, use_errno=True)
    buf = Statfs()
    if libc.statfs(path.encode(), ctypes.byref(buf)) != 0:
        return False
    return (buf.f_type & 0xFFFFFFFF) == BPF_FS_MAGIC


def obj_pin(fd: int, path: str) -> None:
    """Pin any bpf object (map, program, link) at ``path`` inside bpffs."""
    parent = os.path.dirname(os.path.abspath(path))
    if parent.startswith(BPFFS):
        ensure_bpffs(BPFFS)
        os.makedirs(parent, exist_ok=True)
    name = ctypes.create_string_buffer(os.fsencode(path))
    try:
        syscall.bpf(uapi.Cmd.OBJ_PIN, ObjPinAttr(pathname=ctypes.addressof(name), bpf_fd=fd))
    except KernelError as exc:
        hint = " (the path must be inside a bpffs mount such as /sys/fs/bpf)" \
            if exc.errno == errno.EPERM or exc.errno == errno.EINVAL else ""
        raise KernelError(f"cannot pin at {path}: {syscall.errno_name(exc.errno or 0)}{hint}",
                          errno=exc.errno, command="BPF_OBJ_PIN") from None


def obj_get(path: str, flags: int = 0) -> int:
    """Open a pinned bpf object; returns a new fd."""
    name = ctypes.create_string_buffer(os.fsencode(path))
    try:
        return syscall.bpf(uapi.Cmd.OBJ_GET, ObjPinAttr(pathname=ctypes.addressof(name),
                                                         file_flags=flags))
    except KernelError as exc:
        raise KernelError(f"cannot open pinned object {path}: "
                          f"{syscall.errno_name(exc.errno or 0)}", errno=exc.errno,
                          command="BPF_OBJ_GET") from None


def unpin(path: str) -> None:
    """Remove a pin (the object lives on while something else holds it)."""
    os.unlink(path)


def iter_map_ids() -> Iterator[int]:
    """Ids of every map in the system (``BPF_MAP_GET_NEXT_ID``)."""
    yield from _iter_ids(uapi.Cmd.MAP_GET_NEXT_ID)


def _iter_ids(cmd) -> Iterator[int]:
    current = 0
    while True:
        attr = GetIdAttr(start_id=current)
        try:
            syscall.bpf(cmd, attr)
        except KernelError as exc:
            if exc.errno == errno.ENOENT:
                return
            raise
        current = attr.next_id
        yield current
