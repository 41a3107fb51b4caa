/* Dynamic pointers over a map value and over ring buffer records, for comparing pybpf's
 * helpers with the kernel's (test_dynptr.py). */
#include "pybpf_dynptr.h"

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, char[64]);
} scratch SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} events SEC(".maps");

/* copy 8 bytes of the packet into a map value through a dynptr at a packet-chosen offset,
 * read them back through the dynptr and through bpf_dynptr_data; the helpers' answers
 * (0, -E2BIG, ...) and the bytes come back in r0 */
SEC("xdp")
int local_dynptr(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    unsigned char *end = (void *)(long)ctx->data_end;
    struct bpf_dynptr ptr;
    __u32 key = 0;
    char *value;
    __u64 word = 0, back = 0;
    long wrote, read;
    __u32 off;
    __u64 *direct;

    if (data + 16 > end)
        return 0;
    value = bpf_map_lookup_elem(&scratch, &key);
    if (!value)
        return 0;
    off = data[0] & 63;
    __builtin_memcpy(&word, data + 8, 8);
    bpf_dynptr_from_mem(value, 64, 0, &ptr);
    wrote = bpf_dynptr_write(&ptr, off, &word, 8, 0);
    read = bpf_dynptr_read(&back, 8, &ptr, off, 0);
    direct = bpf_dynptr_data(&ptr, 8, 8);
    return (wrote & 0xff) << 24 | (read & 0xff) << 16 | (direct ? 0x100 : 0) |
           ((back ^ word) & 0xff);
}

/* bad flags give a null dynptr; reads through it, or past the end of a good one, fail */
SEC("xdp")
int local_dynptr_errors(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    unsigned char *end = (void *)(long)ctx->data_end;
    struct bpf_dynptr ptr;
    char buf[4];
    __u32 key = 0;
    char *value;
    long made, read;

    if (data + 2 > end)
        return 0;
    value = bpf_map_lookup_elem(&scratch, &key);
    if (!value)
        return 0;
    made = bpf_dynptr_from_mem(value, 16, data[1] & 1, &ptr);
    read = bpf_dynptr_read(buf, 4, &ptr, data[0] & 31, 0);
    return (made & 0xff) << 8 | (read & 0xff);
}

/* a ring buffer record through a dynptr: reserve, write the packet's first 8 bytes, submit
 * (or discard when the packet asks) */
SEC("xdp")
int ringbuf_dynptr(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    unsigned char *end = (void *)(long)ctx->data_end;
    struct bpf_dynptr ptr;
    __u64 word = 0;
    long got, wrote = 0;

    if (data + 8 > end)
        return 0;
    __builtin_memcpy(&word, data, 8);
    got = bpf_ringbuf_reserve_dynptr(&events, 16, 0, &ptr);
    if (!got)
        wrote = bpf_dynptr_write(&ptr, data[0] & 15, &word, 8, 0);
    if (data[1] & 1)
        bpf_ringbuf_discard_dynptr(&ptr, 0);
    else
        bpf_ringbuf_submit_dynptr(&ptr, 0);
    return (got & 0xff) << 8 | (wrote & 0xff);
}

char LICENSE[] SEC("license") = "GPL";
