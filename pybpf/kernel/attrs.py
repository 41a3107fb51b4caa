"""One ctypes structure per bpf(2) command: the member of ``union bpf_attr`` it uses.

Layouts follow ``include/uapi/linux/bpf.h`` field by field (same names, same order, natural
alignment, as the C compiler lays them out); ``tests/kernel/test_attrs.py`` checks every offset
against the header with clang. A command's structure may be shorter than the kernel's union:
bpf(2) takes the size we pass and treats the rest as zero, which is also how old and new kernels
stay compatible (libbpf passes ``offsetofend`` of the last field it uses for the same reason).

Also here: the information records ``bpf_prog_info``, ``bpf_map_info``, ``bpf_link_info`` and
``bpf_btf_info`` returned by ``BPF_OBJ_GET_INFO_BY_FD``.
"""

from __future__ import annotations

import ctypes
from ctypes import c_char, c_int32, c_uint8, c_uint32, c_uint64

u8, u32, s32, u64 = c_uint8, c_uint32, c_int32, c_uint64


class _Attr(ctypes.Structure):
    """Base: a zero-initialised structure whose fields can be given as keywords."""

    def as_dict(self) -> dict:
        out = {}
        for name, _ in self._fields_:
            value = getattr(self, name)
            out[name] = bytes(value) if isinstance(value, ctypes.Array) else value
        return out


class MapCreateAttr(_Attr):
    """BPF_MAP_CREATE."""

    _fields_ = [
        ("map_type", u32), ("key_size", u32), ("value_size", u32), ("max_entries", u32),
        ("map_flags", u32), ("inner_map_fd", u32), ("numa_node", u32),
        ("map_name", c_char * 16), ("map_ifindex", u32), ("btf_fd", u32),
        ("btf_key_type_id", u32), ("btf_value_type_id", u32),
        ("btf_vmlinux_value_type_id", u32), ("map_extra", u64),
        ("value_type_btf_obj_fd", s32), ("map_token_fd", s32),
    ]


class MapElemAttr(_Attr):
    """BPF_MAP_LOOKUP_ELEM, UPDATE_ELEM, DELETE_ELEM, GET_NEXT_KEY, LOOKUP_AND_DELETE_ELEM,
    FREEZE (``value`` doubles as ``next_key``)."""

    _fields_ = [("map_fd", u32), ("key", u64), ("value", u64), ("flags", u64)]

    @property
    def next_key(self) -> int:
        return self.value


class MapBatchAttr(_Attr):
    """BPF_MAP_LOOKUP_BATCH, LOOKUP_AND_DELETE_BATCH, UPDATE_BATCH, DELETE_BATCH."""

    _fields_ = [
        ("in_batch", u64), ("out_batch", u64), ("keys", u64), ("values", u64),
        ("count", u32), ("map_fd", u32), ("elem_flags", u64), ("flags", u64),
    ]


class ProgLoadAttr(_Attr):
    """BPF_PROG_LOAD."""

    _fields_ = [
        ("prog_type", u32), ("insn_cnt", u32), ("insns", u64), ("license", u64),
        ("log_level", u32), ("log_size", u32), ("log_buf", u64), ("kern_version", u32),
        ("prog_flags", u32), ("prog_name", c_char * 16), ("prog_ifindex", u32),
        ("expected_attach_type", u32), ("prog_btf_fd", u32), ("func_info_rec_size", u32),
        ("func_info", u64), ("func_info_cnt", u32), ("line_info_rec_size", u32),
        ("line_info", u64), ("line_info_cnt", u32), ("attach_btf_id", u32),
        ("attach_prog_fd", u32),  # also attach_btf_obj_fd
        ("core_relo_cnt", u32), ("fd_array", u64), ("core_relos", u64),
        ("core_relo_rec_size", u32), ("log_true_size", u32),
    ]


class ObjPinAttr(_Attr):
    """BPF_OBJ_PIN and BPF_OBJ_GET."""

    _fields_ = [("pathname", u64), ("bpf_fd", u32), ("file_flags", u32), ("path_fd", s32)]


class ProgAttachAttr(_Attr):
    """BPF_PROG_ATTACH and BPF_PROG_DETACH (``target_fd`` doubles as ``target_ifindex``)."""

    _fields_ = [
        ("target_fd", u32), ("attach_bpf_fd", u32), ("attach_type", u32),
        ("attach_flags", u32), ("replace_bpf_fd", u32), ("relative_fd", u32),
        ("expected_revision", u64),
    ]


class TestRunAttr(_Attr):
    """BPF_PROG_TEST_RUN (a.k.a. BPF_PROG_RUN)."""

    __test__ = False  # not a pytest test class despite the name

    _fields_ = [
        ("prog_fd", u32), ("retval", u32), ("data_size_in", u32), ("data_size_out", u32),
        ("data_in", u64), ("data_out", u64), ("repeat", u32), ("duration", u32),
        ("ctx_size_in", u32), ("ctx_size_out", u32), ("ctx_in", u64), ("ctx_out", u64),
        ("flags", u32), ("cpu", u32), ("batch_size", u32),
    ]


class GetIdAttr(_Attr):
    """BPF_*_GET_NEXT_ID and BPF_*_GET_FD_BY_ID (``start_id`` doubles as prog/map/btf/link id)."""

    _fields_ = [("start_id", u32), ("next_id", u32), ("open_flags", u32), ("fd_by_id_token_fd", u32)]


class InfoAttr(_Attr):
    """BPF_OBJ_GET_INFO_BY_FD."""

    _fields_ = [("bpf_fd", u32), ("info_len", u32), ("info", u64)]


class ProgQueryAttr(_Attr):
    """BPF_PROG_QUERY (``target_fd`` doubles as ``target_ifindex``)."""

    _fields_ = [
        ("target_fd", u32), ("attach_type", u32), ("query_flags", u32), ("attach_flags", u32),
        ("prog_ids", u64), ("prog_cnt", u32), ("_pad", u32), ("prog_attach_flags", u64),
        ("link_ids", u64), ("link_attach_flags", u64), ("revision", u64),
    ]


class RawTracepointOpenAttr(_Attr):
    """BPF_RAW_TRACEPOINT_OPEN."""

    _fields_ = [("name", u64), ("prog_fd", u32), ("_pad", u32), ("cookie", u64)]


class BtfLoadAttr(_Attr):
    """BPF_BTF_LOAD."""

    _fields_ = [
        ("btf", u64), ("btf_log_buf", u64), ("btf_size", u32), ("btf_log_size", u32),
        ("btf_log_level", u32), ("btf_log_true_size", u32), ("btf_flags", u32),
        ("btf_token_fd", s32),
    ]


class TaskFdQueryAttr(_Attr):
    """BPF_TASK_FD_QUERY: what a perf event fd of a task is attached to."""

    _fields_ = [
        ("pid", u32), ("fd", u32), ("flags", u32), ("buf_len", u32), ("buf", u64),
        ("prog_id", u32), ("fd_type", u32), ("probe_offset", u64), ("probe_addr", u64),
    ]


class _LinkPerfEvent(ctypes.Structure):
    _fields_ = [("bpf_cookie", u64)]


class _LinkTracing(ctypes.Structure):
    _fields_ = [("target_btf_id", u32), ("_pad", u32), ("cookie", u64)]


class _LinkTcx(ctypes.Structure):
    _fields_ = [("relative_fd", u32), ("_pad", u32), ("expected_revision", u64)]


class _LinkIter(ctypes.Structure):
    _fields_ = [("iter_info", u64), ("iter_info_len", u32)]


class _LinkKprobeMulti(ctypes.Structure):
    _fields_ = [("flags", u32), ("cnt", u32), ("syms", u64), ("addrs", u64), ("cookies", u64)]


class _LinkUprobeMulti(ctypes.Structure):
    _fields_ = [("path", u64), ("offsets", u64), ("ref_ctr_offsets", u64), ("cookies", u64),
                ("cnt", u32), ("flags", u32), ("pid", u32)]


class _LinkNetfilter(ctypes.Structure):
    _fields_ = [("pf", u32), ("hooknum", u32), ("priority", s32), ("flags", u32)]


class _LinkTarget(ctypes.Union):
    _fields_ = [
        ("target_btf_id", u32), ("iter", _LinkIter), ("perf_event", _LinkPerfEvent),
        ("kprobe_multi", _LinkKprobeMulti), ("tracing", _LinkTracing),
        ("netfilter", _LinkNetfilter), ("tcx", _LinkTcx), ("uprobe_multi", _LinkUprobeMulti),
    ]


class LinkCreateAttr(_Attr):
    """BPF_LINK_CREATE (``prog_fd`` doubles as ``map_fd``, ``target_fd`` as
    ``target_ifindex``); the attach-type specific part is the union ``target``."""

    _fields_ = [
        ("prog_fd", u32), ("target_fd", u32), ("attach_type", u32), ("flags", u32),
        ("target", _LinkTarget),
    ]


class LinkUpdateAttr(_Attr):
    """BPF_LINK_UPDATE."""

    _fields_ = [("link_fd", u32), ("new_prog_fd", u32), ("flags", u32), ("old_prog_fd", u32)]


class LinkDetachAttr(_Attr):
    """BPF_LINK_DETACH."""

    _fields_ = [("link_fd", u32)]


class EnableStatsAttr(_Attr):
    """BPF_ENABLE_STATS (type 0 = BPF_STATS_RUN_TIME)."""

    _fields_ = [("type", u32)]


class IterCreateAttr(_Attr):
    """BPF_ITER_CREATE."""

    _fields_ = [("link_fd", u32), ("flags", u32)]


class ProgBindMapAttr(_Attr):
    """BPF_PROG_BIND_MAP."""

    _fields_ = [("prog_fd", u32), ("map_fd", u32), ("flags", u32)]


# --- object information (BPF_OBJ_GET_INFO_BY_FD) ---------------------------------------------

class ProgInfo(_Attr):
    """struct bpf_prog_info."""

    _fields_ = [
        ("type", u32), ("id", u32), ("tag", u8 * 8), ("jited_prog_len", u32),
        ("xlated_prog_len", u32), ("jited_prog_insns", u64), ("xlated_prog_insns", u64),
        ("load_time", u64), ("created_by_uid", u32), ("nr_map_ids", u32), ("map_ids", u64),
        ("name", c_char * 16), ("ifindex", u32), ("gpl_compatible", u32),
        ("netns_dev", u64), ("netns_ino", u64), ("nr_jited_ksyms", u32),
        ("nr_jited_func_lens", u32), ("jited_ksyms", u64), ("jited_func_lens", u64),
        ("btf_id", u32), ("func_info_rec_size", u32), ("func_info", u64),
        ("nr_func_info", u32), ("nr_line_info", u32), ("line_info", u64),
        ("jited_line_info", u64), ("nr_jited_line_info", u32), ("line_info_rec_size", u32),
        ("jited_line_info_rec_size", u32), ("nr_prog_tags", u32), ("prog_tags", u64),
        ("run_time_ns", u64), ("run_cnt", u64), ("recursion_misses", u64),
        ("verified_insns", u32), ("attach_btf_obj_id", u32), ("attach_btf_id", u32),
    ]


class MapInfo(_Attr):
    """struct bpf_map_info."""

    _fields_ = [
        ("type", u32), ("id", u32), ("key_size", u32), ("value_size", u32),
        ("max_entries", u32), ("map_flags", u32), ("name", c_char * 16), ("ifindex", u32),
        ("btf_vmlinux_value_type_id", u32), ("netns_dev", u64), ("netns_ino", u64),
        ("btf_id", u32), ("btf_key_type_id", u32), ("btf_value_type_id", u32),
        ("btf_vmlinux_id", u32), ("map_extra", u64),
    ]


class LinkInfo(_Attr):
    """struct bpf_link_info: the common head and the type-specific union as raw words."""

    _fields_ = [("type", u32), ("id", u32), ("prog_id", u32), ("_pad", u32),
                ("extra", u64 * 8)]


class BtfInfo(_Attr):
    """struct bpf_btf_info."""

    _fields_ = [("btf", u64), ("btf_size", u32), ("id", u32), ("name", u64),
                ("name_len", u32), ("kernel_btf", u32)]


def pointer(buffer) -> int:
    """The address of a ctypes buffer for a ``__u64`` pointer field (0 for None)."""
    return 0 if buffer is None else ctypes.addressof(buffer)
