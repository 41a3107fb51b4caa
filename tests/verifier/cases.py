"""Hand-written programs, one or more per verifier rule; the kernel decides the verdict.

Each case is (name, program type, assembly). Tests load every case in the running kernel and
in pybpf's verifier and compare the verdicts, so no expected result here comes from pybpf.
"""

ARRAY = ".map arr array key=4 value=16 max_entries=4\n"
HASH = ".map h hash key=8 value=24 max_entries=16\n"
RINGBUF = ".map rb ringbuf key=0 value=0 max_entries=4096\n"
PROGS = ".map jt prog_array key=4 value=4 max_entries=4\n"

LOOKUP = """
*(u32 *)(r10 - 4) = 0
r2 = r10
r2 += -4
r1 = arr ll
call bpf_map_lookup_elem
"""

CASES: list[tuple[str, str, str]] = [
    # --- scalars and registers ---
    ("return_constant", "socket_filter", "r0 = 0\nexit"),
    ("uninitialised_return", "socket_filter", "exit"),
    ("uninitialised_source", "socket_filter", "r0 = r2\nexit"),
    ("write_frame_pointer", "socket_filter", "r10 = 0\nr0 = 0\nexit"),
    ("div_by_zero_imm", "socket_filter", "r0 = 1\nr0 /= 0\nexit"),
    ("mod_by_zero_imm32", "socket_filter", "w0 = 1\nw0 %= 0\nexit"),
    ("div_by_zero_reg_ok", "socket_filter", "r0 = 1\nr1 = 0\nr0 /= r1\nexit"),
    ("shift_too_far", "socket_filter", "r0 = 1\nr0 <<= 64\nexit"),
    ("shift32_too_far", "socket_filter", "w0 = 1\nw0 >>= 32\nexit"),
    ("arsh_ok", "socket_filter", "r0 = -8\nr0 s>>= 2\nexit"),
    ("alu_all_ops", "socket_filter",
     "r0 = 7\nr0 += 3\nr0 -= 1\nr0 *= 3\nr0 /= 2\nr0 %= 5\nr0 |= 8\nr0 &= 12\nr0 ^= 3\n"
     "r0 <<= 2\nr0 >>= 1\nr0 = -r0\nw0 += 1\nr0 = be16 r0\nr0 = le32 r0\nexit"),
    ("movsx", "socket_filter", "r1 = 0xff\nr0 = (s8)r1\nw0 = (s16)w1\nexit"),
    ("sdiv", "socket_filter", "r0 = -9\nr0 s/= 2\nr0 s%= 3\nexit"),
    ("bswap64", "socket_filter", "r0 = 0x1122\nr0 = bswap64 r0\nexit"),
    ("lddw_imm", "socket_filter", "r0 = 0x123456789 ll\nexit"),
    # --- structure ---
    ("fall_off_end", "socket_filter", "r0 = 0"),
    ("jump_out_of_range", "socket_filter", "r0 = 0\ngoto +5\nexit"),
    ("unreachable_insn", "socket_filter", "r0 = 0\nexit\nr0 = 1\nexit"),
    ("jump_into_lddw", "socket_filter", "r0 = 0\nif r0 == 0 goto +1\nr1 = 0x1 ll\nexit"),
    ("backward_jump_loop_bounded", "socket_filter",
     "r0 = 0\nr1 = 0\nloop:\nr0 += r1\nr1 += 1\nif r1 < 10 goto loop\nexit"),
    ("infinite_loop", "socket_filter", "r0 = 0\nloop:\nif r0 == 0 goto loop\nexit"),
    ("goto_self", "socket_filter", "r0 = 0\nl:\ngoto l\nexit"),
    ("unbounded_loop", "socket_filter", "r0 = 0\nloop:\nr0 += 1\nif r0 != 0 goto loop\nexit"),
    # --- stack ---
    ("stack_write_read", "socket_filter",
     "r1 = 5\n*(u64 *)(r10 - 8) = r1\nr0 = *(u64 *)(r10 - 8)\nexit"),
    ("stack_out_of_bounds", "socket_filter", "r1 = 5\n*(u64 *)(r10 - 520) = r1\nr0 = 0\nexit"),
    ("stack_above_frame", "socket_filter", "r1 = 5\n*(u64 *)(r10 + 0) = r1\nr0 = 0\nexit"),
    ("stack_misaligned", "socket_filter", "r1 = 5\n*(u64 *)(r10 - 4) = r1\nr0 = 0\nexit"),
    ("stack_misaligned_read", "socket_filter", "r0 = *(u32 *)(r10 - 6)\nexit"),
    ("stack_uninit_read_root", "socket_filter", "r0 = *(u64 *)(r10 - 8)\nexit"),
    ("stack_partial_write", "socket_filter",
     "*(u32 *)(r10 - 8) = 1\nr0 = *(u64 *)(r10 - 8)\nexit"),
    ("stack_spill_ctx_fill", "socket_filter",
     "*(u64 *)(r10 - 8) = r1\nr1 = *(u64 *)(r10 - 8)\nr0 = *(u32 *)(r1 + 0)\nexit"),
    ("stack_partial_ptr_spill", "socket_filter", "*(u32 *)(r10 - 8) = r1\nr0 = 0\nexit"),
    ("stack_partial_ptr_fill", "socket_filter",
     "*(u64 *)(r10 - 8) = r1\nr0 = *(u32 *)(r10 - 8)\nexit"),
    ("stack_spill_scalar_narrow_fill", "socket_filter",
     "r1 = 0x1234\n*(u64 *)(r10 - 8) = r1\nr0 = *(u16 *)(r10 - 8)\nexit"),
    ("stack_var_offset_read", "socket_filter",
     "r2 = *(u32 *)(r1 + 0)\nr2 &= 7\nr3 = r10\nr3 += -16\nr3 += r2\n"
     "*(u64 *)(r10 - 16) = 0\n*(u64 *)(r10 - 8) = 0\nr0 = *(u8 *)(r3 + 0)\nexit"),
    ("stack_var_offset_oob", "socket_filter",
     "r2 = *(u32 *)(r1 + 0)\nr2 &= 15\nr3 = r10\nr3 += -8\nr3 += r2\nr0 = *(u8 *)(r3 + 0)\nexit"),
    ("stack_var_offset_unbounded", "socket_filter",
     "r2 = *(u32 *)(r1 + 0)\nr3 = r10\nr3 += r2\nr0 = *(u8 *)(r3 + 0)\nexit"),
    ("stack_subtract_prohibited", "socket_filter", "r2 = r10\nr3 = 8\nr2 -= r3\nr0 = 0\nexit"),
    ("stack_pointer_minus_const", "socket_filter",
     "r2 = r10\nr2 -= 8\n*(u64 *)(r2 + 0) = 0\nr0 = *(u64 *)(r2 + 0)\nexit"),
    # --- ctx ---
    ("skb_len_read", "socket_filter", "r0 = *(u32 *)(r1 + 0)\nexit"),
    ("skb_narrow_read", "socket_filter", "r0 = *(u8 *)(r1 + 0)\nr0 = *(u16 *)(r1 + 2)\nexit"),
    ("skb_misaligned_read", "socket_filter", "r0 = *(u16 *)(r1 + 1)\nexit"),
    ("skb_read_past_end", "socket_filter", "r0 = *(u32 *)(r1 + 192)\nexit"),
    ("skb_data_in_socket_filter", "socket_filter", "r0 = *(u32 *)(r1 + 76)\nexit"),
    ("skb_write_mark_socket_filter", "socket_filter", "r2 = 1\n*(u32 *)(r1 + 8) = r2\nr0 = 0\nexit"),
    ("skb_write_cb", "socket_filter", "r2 = 1\n*(u32 *)(r1 + 48) = r2\nr0 = 0\nexit"),
    ("skb_st_into_ctx", "socket_filter", "*(u32 *)(r1 + 48) = 1\nr0 = 0\nexit"),
    ("skb_write_mark_tc", "sched_cls", "r2 = 1\n*(u32 *)(r1 + 8) = r2\nr0 = 0\nexit"),
    ("skb_write_len_tc", "sched_cls", "r2 = 1\n*(u32 *)(r1 + 0) = r2\nr0 = 0\nexit"),
    ("ctx_modified_pointer", "socket_filter", "r1 += 4\nr0 = *(u32 *)(r1 + 0)\nexit"),
    ("ctx_u64_read", "socket_filter", "r0 = *(u64 *)(r1 + 0)\nexit"),
    ("skb_family_read_sf", "socket_filter", "r0 = *(u32 *)(r1 + 88)\nexit"),
    ("skb_tstamp_tc", "sched_cls", "r0 = *(u64 *)(r1 + 152)\nexit"),
    ("xdp_data_read", "xdp", "r0 = *(u32 *)(r1 + 0)\nr0 = 2\nexit"),
    ("xdp_narrow_read", "xdp", "r0 = *(u16 *)(r1 + 12)\nr0 = 2\nexit"),
    ("xdp_write_ctx", "xdp", "r2 = 0\n*(u32 *)(r1 + 12) = r2\nr0 = 2\nexit"),
    ("xdp_egress_ifindex", "xdp", "r0 = *(u32 *)(r1 + 20)\nexit"),
    ("kprobe_read_regs", "kprobe", "r0 = *(u64 *)(r1 + 160)\nr0 = 0\nexit"),
    ("kprobe_read_past", "kprobe", "r0 = *(u64 *)(r1 + 168)\nr0 = 0\nexit"),
    ("kprobe_write", "kprobe", "r2 = 0\n*(u64 *)(r1 + 0) = r2\nr0 = 0\nexit"),
    ("tracepoint_read_header", "tracepoint", "r0 = *(u64 *)(r1 + 0)\nr0 = 0\nexit"),
    ("tracepoint_read_field", "tracepoint", "r0 = *(u64 *)(r1 + 8)\nr0 = 0\nexit"),
    ("tracepoint_negative_offset", "tracepoint", "r0 = *(u8 *)(r1 - 1)\nr0 = 0\nexit"),
    # --- packet ---
    ("xdp_packet_no_check", "xdp", "r2 = *(u32 *)(r1 + 0)\nr0 = *(u8 *)(r2 + 0)\nexit"),
    ("xdp_packet_checked", "xdp",
     "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = r2\nr4 += 14\n"
     "if r4 > r3 goto out\nr0 = *(u8 *)(r2 + 13)\nexit\nout:\nr0 = 1\nexit"),
    ("xdp_packet_checked_too_far", "xdp",
     "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = r2\nr4 += 14\n"
     "if r4 > r3 goto out\nr0 = *(u8 *)(r2 + 14)\nexit\nout:\nr0 = 1\nexit"),
    ("xdp_packet_check_reversed", "xdp",
     "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = r2\nr4 += 8\n"
     "if r3 < r4 goto out\nr0 = *(u64 *)(r2 + 0)\nexit\nout:\nr0 = 1\nexit"),
    ("xdp_packet_check_ge", "xdp",
     "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = r2\nr4 += 8\n"
     "if r4 >= r3 goto out\nr0 = *(u64 *)(r2 + 0)\nr0 = *(u8 *)(r2 + 8)\nexit\nout:\nr0 = 1\nexit"),
    ("xdp_pkt_end_arith", "xdp", "r3 = *(u32 *)(r1 + 4)\nr3 += 1\nr0 = 1\nexit"),
    ("xdp_pkt_write", "xdp",
     "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = r2\nr4 += 1\n"
     "if r4 > r3 goto out\n*(u8 *)(r2 + 0) = 1\nout:\nr0 = 1\nexit"),
    ("tc_pkt_read", "sched_cls",
     "r2 = *(u32 *)(r1 + 76)\nr3 = *(u32 *)(r1 + 80)\nr4 = r2\nr4 += 4\n"
     "if r4 > r3 goto out\nr0 = *(u32 *)(r2 + 0)\nexit\nout:\nr0 = 0\nexit"),
    ("xdp_pkt_var_offset", "xdp",
     "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr5 = *(u32 *)(r1 + 12)\nr5 &= 0xf\n"
     "r2 += r5\nr4 = r2\nr4 += 4\nif r4 > r3 goto out\nr0 = *(u32 *)(r2 + 0)\nexit\n"
     "out:\nr0 = 1\nexit"),
    ("xdp_pkt_unbounded_var", "xdp",
     "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr5 = *(u32 *)(r1 + 12)\n"
     "r2 += r5\nr4 = r2\nr4 += 4\nif r4 > r3 goto out\nr0 = *(u32 *)(r2 + 0)\nexit\n"
     "out:\nr0 = 1\nexit"),
    ("xdp_pkt_signed_unbounded", "xdp",
     "r2 = *(u32 *)(r1 + 0)\nr5 = *(u64 *)(r10 - 8)\nr2 += r5\nr0 = 1\nexit"),
    ("xdp_pkt_meta", "xdp",
     "r2 = *(u32 *)(r1 + 8)\nr3 = *(u32 *)(r1 + 0)\nr4 = r2\nr4 += 4\n"
     "if r4 > r3 goto out\nr0 = *(u32 *)(r2 + 0)\nexit\nout:\nr0 = 1\nexit"),
    ("pkt_end_marker_decides_second_check", "xdp",
     "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = r2\nr4 += 14\nif r4 > r3 goto out\n"
     "r0 = 0\nexit\nout:\nif r4 > r3 goto out2\nr0 = *(u8 *)(r2 + 0)\nout2:\nr0 = 1\nexit"),
    ("pkt_end_marker_at_end_is_not_beyond", "xdp",
     "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = r2\nr4 += 14\nif r4 >= r3 goto out\n"
     "r0 = 0\nexit\nout:\nif r4 > r3 goto out2\nr0 = *(u8 *)(r2 + 0)\nout2:\nr0 = 1\nexit"),
    ("pkt_end_marker_pointer_not_readable", "xdp",
     "r2 = *(u32 *)(r1 + 0)\nr3 = *(u32 *)(r1 + 4)\nr4 = r2\nr4 += 14\nif r4 > r3 goto out\n"
     "r0 = 0\nexit\nout:\nr0 = *(u8 *)(r4 - 1)\nr0 = 1\nexit"),
    ("ld_abs_result_is_unbounded", "socket_filter",
     "r6 = r1\nr0 = *(u8 *)skb[12]\nr2 = r10\nr2 += -256\nr2 += r0\nr1 = 0\n"
     "*(u8 *)(r2 + 0) = r1\nr0 = 0\nexit"),
    ("ld_abs_socket_filter", "socket_filter", "r6 = r1\nr0 = *(u8 *)skb[12]\nexit"),
    ("ld_abs_without_r6", "socket_filter", "r0 = *(u8 *)skb[12]\nexit"),
    ("ld_abs_xdp", "xdp", "r6 = r1\nr0 = *(u8 *)skb[12]\nexit"),
    ("ld_ind", "socket_filter", "r6 = r1\nr2 = 3\nr0 = *(u16 *)skb[r2 + 12]\nexit"),
    # --- maps and helpers ---
    ("map_lookup_no_null_check", "socket_filter",
     ARRAY + LOOKUP + "r0 = *(u64 *)(r0 + 0)\nexit"),
    ("map_lookup_null_checked", "socket_filter",
     ARRAY + LOOKUP + "if r0 == 0 goto out\nr0 = *(u64 *)(r0 + 8)\nout:\nr0 = 0\nexit"),
    ("map_value_out_of_bounds", "socket_filter",
     ARRAY + LOOKUP + "if r0 == 0 goto out\nr0 = *(u64 *)(r0 + 12)\nout:\nr0 = 0\nexit"),
    ("map_value_ne_check", "socket_filter",
     ARRAY + LOOKUP + "if r0 != 0 goto ok\nexit\nok:\nr0 = *(u32 *)(r0 + 12)\nr0 = 0\nexit"),
    ("map_value_var_index_checked", "socket_filter",
     ARRAY + "r6 = *(u32 *)(r1 + 0)\n" + LOOKUP +
     "if r0 == 0 goto out\nif r6 > 12 goto out\nr0 += r6\nr0 = *(u32 *)(r0 + 0)\n"
     "out:\nr0 = 0\nexit"),
    ("map_value_var_index_unchecked", "socket_filter",
     ARRAY + "r6 = *(u32 *)(r1 + 0)\n" + LOOKUP +
     "if r0 == 0 goto out\nr0 += r6\nr0 = *(u32 *)(r0 + 0)\nout:\nr0 = 0\nexit"),
    ("map_value_var_index_off_by_one", "socket_filter",
     ARRAY + "r6 = *(u32 *)(r1 + 0)\n" + LOOKUP +
     "if r0 == 0 goto out\nif r6 > 13 goto out\nr0 += r6\nr0 = *(u32 *)(r0 + 0)\n"
     "out:\nr0 = 0\nexit"),
    ("map_value_signed_index", "socket_filter",
     ARRAY + "r6 = *(u32 *)(r1 + 0)\nr6 = (s32)r6\n" + LOOKUP +
     "if r0 == 0 goto out\nif r6 s> 12 goto out\nr0 += r6\nr0 = *(u32 *)(r0 + 0)\n"
     "out:\nr0 = 0\nexit"),
    ("map_null_arith", "socket_filter", ARRAY + LOOKUP + "r0 += 8\nr0 = 0\nexit"),
    ("map_key_uninit_root", "socket_filter",
     ARRAY + "r2 = r10\nr2 += -4\nr1 = arr ll\ncall bpf_map_lookup_elem\nr0 = 0\nexit"),
    ("map_key_out_of_stack", "socket_filter",
     ARRAY + "r2 = r10\nr2 += -2\nr1 = arr ll\ncall bpf_map_lookup_elem\nr0 = 0\nexit"),
    ("map_key_scalar", "socket_filter",
     ARRAY + "r2 = 0\nr1 = arr ll\ncall bpf_map_lookup_elem\nr0 = 0\nexit"),
    ("map_wrong_arg1", "socket_filter",
     "*(u32 *)(r10 - 4) = 0\nr2 = r10\nr2 += -4\nr1 = 0\ncall bpf_map_lookup_elem\n"
     "r0 = 0\nexit"),
    ("map_update", "socket_filter",
     ARRAY + "*(u32 *)(r10 - 4) = 0\n*(u64 *)(r10 - 24) = 0\n*(u64 *)(r10 - 16) = 0\n"
     "r2 = r10\nr2 += -4\nr3 = r10\nr3 += -24\nr4 = 0\nr1 = arr ll\n"
     "call bpf_map_update_elem\nexit"),
    ("map_update_value_too_small", "socket_filter",
     ARRAY + "*(u32 *)(r10 - 4) = 0\n"
     "r2 = r10\nr2 += -4\nr3 = r10\nr3 += -8\nr4 = 0\nr1 = arr ll\n"
     "call bpf_map_update_elem\nexit"),
    ("hash_lookup_delete", "socket_filter",
     HASH + "*(u64 *)(r10 - 8) = 0\nr2 = r10\nr2 += -8\nr1 = h ll\n"
     "call bpf_map_delete_elem\nexit"),
    ("helper_clobbers_r1", "socket_filter",
     "call bpf_ktime_get_ns\nr0 = *(u32 *)(r1 + 0)\nexit"),
    ("helper_keeps_r6", "socket_filter",
     "r6 = r1\ncall bpf_ktime_get_ns\nr0 = *(u32 *)(r6 + 0)\nexit"),
    ("helper_unknown", "socket_filter", "call 10000\nr0 = 0\nexit"),
    ("helper_not_allowed", "socket_filter", "call bpf_xdp_adjust_head\nr0 = 0\nexit"),
    ("helper_get_prandom", "xdp", "call bpf_get_prandom_u32\nexit"),
    ("trace_printk", "kprobe",
     "r1 = 0x0a6968\n*(u64 *)(r10 - 8) = r1\nr1 = r10\nr1 += -8\nr2 = 8\n"
     "call bpf_trace_printk\nr0 = 0\nexit"),
    ("trace_printk_zero_size", "kprobe",
     "r1 = r10\nr1 += -8\nr2 = 0\ncall bpf_trace_printk\nr0 = 0\nexit"),
    ("skb_load_bytes", "socket_filter",
     "r2 = 0\nr3 = r10\nr3 += -16\nr4 = 16\ncall bpf_skb_load_bytes\nr0 = 0\nexit"),
    ("skb_load_bytes_too_big", "socket_filter",
     "r2 = 0\nr3 = r10\nr3 += -16\nr4 = 17\ncall bpf_skb_load_bytes\nr0 = 0\nexit"),
    ("skb_load_bytes_var_len", "socket_filter",
     "r4 = *(u32 *)(r1 + 0)\nr2 = 0\nr3 = r10\nr3 += -16\ncall bpf_skb_load_bytes\n"
     "r0 = 0\nexit"),
    ("skb_load_bytes_bounded_len", "socket_filter",
     "r4 = *(u32 *)(r1 + 0)\nr4 &= 15\nr4 += 1\nr2 = 0\nr3 = r10\nr3 += -16\n"
     "call bpf_skb_load_bytes\nr0 = 0\nexit"),
    ("tail_call", "socket_filter", PROGS + "r2 = jt ll\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit"),
    ("tail_call_wrong_map", "socket_filter",
     ARRAY + "r2 = arr ll\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit"),
    ("lookup_prog_array", "socket_filter",
     PROGS + "*(u32 *)(r10 - 4) = 0\nr2 = r10\nr2 += -4\nr1 = jt ll\n"
     "call bpf_map_lookup_elem\nr0 = 0\nexit"),
    ("ringbuf_reserve_submit", "socket_filter",
     RINGBUF + "r1 = rb ll\nr2 = 8\nr3 = 0\ncall bpf_ringbuf_reserve\nif r0 == 0 goto out\n"
     "*(u64 *)(r0 + 0) = 1\nr1 = r0\nr2 = 0\ncall bpf_ringbuf_submit\nout:\nr0 = 0\nexit"),
    ("ringbuf_leak", "socket_filter",
     RINGBUF + "r1 = rb ll\nr2 = 8\nr3 = 0\ncall bpf_ringbuf_reserve\nif r0 == 0 goto out\n"
     "*(u64 *)(r0 + 0) = 1\nout:\nr0 = 0\nexit"),
    ("ringbuf_write_past", "socket_filter",
     RINGBUF + "r1 = rb ll\nr2 = 8\nr3 = 0\ncall bpf_ringbuf_reserve\nif r0 == 0 goto out\n"
     "*(u64 *)(r0 + 4) = 1\nr1 = r0\nr2 = 0\ncall bpf_ringbuf_discard\nout:\nr0 = 0\nexit"),
    ("ringbuf_use_after_submit", "socket_filter",
     RINGBUF + "r1 = rb ll\nr2 = 8\nr3 = 0\ncall bpf_ringbuf_reserve\nif r0 == 0 goto out\n"
     "r6 = r0\nr1 = r0\nr2 = 0\ncall bpf_ringbuf_submit\n*(u64 *)(r6 + 0) = 1\n"
     "out:\nr0 = 0\nexit"),
    ("ringbuf_var_size", "socket_filter",
     RINGBUF + "r2 = *(u32 *)(r1 + 0)\nr1 = rb ll\nr3 = 0\ncall bpf_ringbuf_reserve\n"
     "r0 = 0\nexit"),
    # --- pointers ---
    ("return_pointer_root", "socket_filter", "r0 = r1\nexit"),
    ("pointer_add_pointer", "socket_filter", "r1 += r10\nr0 = 0\nexit"),
    ("pointer_sub_pointer", "socket_filter", "r2 = r10\nr2 -= r1\nr0 = 0\nexit"),
    ("pointer_bitwise", "socket_filter", "r1 &= 0xff\nr0 = 0\nexit"),
    ("pointer_mul", "socket_filter", "r1 *= 2\nr0 = 0\nexit"),
    ("pointer_32bit_arith", "socket_filter", "w1 += 1\nr0 = 0\nexit"),
    ("scalar_minus_pointer", "socket_filter", "r0 = 0\nr0 -= r1\nexit"),
    ("pointer_neg", "socket_filter", "r1 = -r1\nr0 = 0\nexit"),
    ("pointer_mov32", "socket_filter", "w0 = w1\nexit"),
    ("pointer_compare", "socket_filter", "r0 = 0\nif r1 > r10 goto +1\nr0 = 1\nexit"),
    ("deref_scalar", "socket_filter", "r1 = 0\nr0 = *(u64 *)(r1 + 0)\nexit"),
    ("map_ptr_arith", "socket_filter", ARRAY + "r1 = arr ll\nr1 += 8\nr0 = 0\nexit"),
    ("map_ptr_deref", "socket_filter", ARRAY + "r1 = arr ll\nr0 = *(u32 *)(r1 + 0)\nexit"),
    ("map_value_direct", "socket_filter",
     ".map g array key=4 value=16 max_entries=1\nr1 = g ll\nr0 = 0\nexit"),
    # --- branches and bounds ---
    ("jmp32_bounds", "socket_filter",
     ARRAY + "r6 = *(u32 *)(r1 + 0)\n" + LOOKUP +
     "if r0 == 0 goto out\nif w6 > 12 goto out\nr0 += r6\nr0 = *(u32 *)(r0 + 0)\n"
     "out:\nr0 = 0\nexit"),
    ("jset_dead_branch", "socket_filter",
     "r0 = 4\nif r0 & 1 goto bad\nexit\nbad:\nr0 = *(u64 *)(r0 + 0)\nexit"),
    ("const_branch_dead_code", "socket_filter",
     "r0 = 0\nif r0 == 1 goto bad\nexit\nbad:\nr0 = *(u64 *)(r0 + 0)\nexit"),
    ("linked_scalars", "socket_filter",
     ARRAY + "r6 = *(u32 *)(r1 + 0)\n" + LOOKUP +
     "if r0 == 0 goto out\nr7 = r6\nif r7 > 12 goto out\nr0 += r6\nr0 = *(u32 *)(r0 + 0)\n"
     "out:\nr0 = 0\nexit"),
    ("signed_bounds_both", "socket_filter",
     ARRAY + "r6 = *(u32 *)(r1 + 0)\n" + LOOKUP +
     "if r0 == 0 goto out\nif r6 s> 12 goto out\nif r6 s< 0 goto out\nr0 += r6\n"
     "r0 = *(u32 *)(r0 + 0)\nout:\nr0 = 0\nexit"),
    ("and_mask_bound", "socket_filter",
     ARRAY + "r6 = *(u32 *)(r1 + 0)\nr6 &= 12\n" + LOOKUP +
     "if r0 == 0 goto out\nr0 += r6\nr0 = *(u32 *)(r0 + 0)\nout:\nr0 = 0\nexit"),
    ("mul_bound", "socket_filter",
     ARRAY + "r6 = *(u32 *)(r1 + 0)\nr6 &= 3\nr6 *= 4\n" + LOOKUP +
     "if r0 == 0 goto out\nr0 += r6\nr0 = *(u32 *)(r0 + 0)\nout:\nr0 = 0\nexit"),
    ("rsh_bound", "socket_filter",
     ARRAY + "r6 = *(u32 *)(r1 + 0)\nr6 >>= 28\n" + LOOKUP +
     "if r0 == 0 goto out\nr0 += r6\nr0 = *(u8 *)(r0 + 0)\nout:\nr0 = 0\nexit"),
    ("rsh_bound_too_big", "socket_filter",
     ARRAY + "r6 = *(u32 *)(r1 + 0)\nr6 >>= 27\n" + LOOKUP +
     "if r0 == 0 goto out\nr0 += r6\nr0 = *(u8 *)(r0 + 0)\nout:\nr0 = 0\nexit"),
    # --- bpf-to-bpf calls ---
    ("subprog_call", "socket_filter",
     "r1 = 1\ncall f\nexit\nf:\nr0 = r1\nr0 += 1\nexit"),
    ("subprog_uninit_r0", "socket_filter", "call f\nexit\nf:\nexit"),
    ("subprog_return_stack_ptr", "socket_filter", "call f\nr0 = 0\nexit\nf:\nr0 = r10\nexit"),
    ("subprog_caller_stack", "socket_filter",
     "*(u64 *)(r10 - 8) = 0\nr1 = r10\nr1 += -8\ncall f\nexit\nf:\nr0 = *(u64 *)(r1 + 0)\nexit"),
    ("subprog_clobbers_r1", "socket_filter",
     "r1 = 1\ncall f\nr0 = r1\nexit\nf:\nr0 = 0\nexit"),
    ("subprog_keeps_r6", "socket_filter",
     "r6 = 1\ncall f\nr0 = r6\nexit\nf:\nr6 = 5\nr0 = 0\nexit"),
    ("subprog_recursion", "socket_filter", "call f\nexit\nf:\ncall f\nr0 = 0\nexit"),
    ("subprog_jump_across", "socket_filter", "r0 = 0\ngoto f\ncall f\nexit\nf:\nr0 = 1\nexit"),
    ("subprog_deep_stack", "socket_filter",
     "*(u64 *)(r10 - 256) = 0\ncall f\nr0 = 0\nexit\n"
     "f:\n*(u64 *)(r10 - 256) = 0\ncall g\nr0 = 0\nexit\n"
     "g:\n*(u64 *)(r10 - 64) = 0\nr0 = 0\nexit"),
    ("subprog_chain_9", "socket_filter",
     "call f1\nexit\nf1:\ncall f2\nexit\nf2:\ncall f3\nexit\nf3:\ncall f4\nexit\n"
     "f4:\ncall f5\nexit\nf5:\ncall f6\nexit\nf6:\ncall f7\nexit\nf7:\ncall f8\nexit\n"
     "f8:\nr0 = 0\nexit"),
    ("subprog_chain_8", "socket_filter",
     "call f1\nexit\nf1:\ncall f2\nexit\nf2:\ncall f3\nexit\nf3:\ncall f4\nexit\n"
     "f4:\ncall f5\nexit\nf5:\ncall f6\nexit\nf6:\ncall f7\nexit\nf7:\nr0 = 0\nexit"),
    ("tail_call_in_subprog_small_stack", "socket_filter",
     PROGS + "*(u64 *)(r10 - 64) = 0\ncall f\nr0 = 0\nexit\n"
     "f:\nr2 = jt ll\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit"),
    ("tail_call_in_subprog_big_stack", "socket_filter",
     PROGS + "*(u64 *)(r10 - 256) = 0\ncall f\nr0 = 0\nexit\n"
     "f:\nr2 = jt ll\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit"),
    # --- atomics ---
    ("atomic_add_stack", "socket_filter",
     "*(u64 *)(r10 - 8) = 0\nr1 = 1\nlock *(u64 *)(r10 - 8) += r1\nr0 = 0\nexit"),
    ("atomic_fetch_add", "socket_filter",
     "*(u64 *)(r10 - 8) = 0\nr1 = 1\nr1 = atomic_fetch_add((u64 *)(r10 - 8), r1)\n"
     "r0 = r1\nexit"),
    ("atomic_on_ctx", "socket_filter", "r2 = 1\nlock *(u32 *)(r1 + 48) += r2\nr0 = 0\nexit"),
    ("atomic_cmpxchg", "socket_filter",
     "*(u64 *)(r10 - 8) = 0\nr0 = 0\nr1 = 1\nr0 = cmpxchg_64(r10 - 8, r0, r1)\nexit"),
    ("atomic_map_value", "socket_filter",
     ARRAY + LOOKUP + "if r0 == 0 goto out\nr1 = 1\nlock *(u64 *)(r0 + 0) += r1\n"
     "out:\nr0 = 0\nexit"),
    ("atomic_pointer_src", "socket_filter",
     "*(u64 *)(r10 - 8) = 0\nlock *(u64 *)(r10 - 8) += r1\nr0 = 0\nexit"),
]
