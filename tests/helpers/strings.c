/* strncmp, snprintf and bpf_loop over packet bytes, for comparing pybpf with the kernel. */
#include "pybpf_fixture.h"

static long (*bpf_strncmp)(const char *s1, __u32 s1_sz, const char *s2) = (void *)182;
static long (*bpf_snprintf)(char *str, __u32 str_size, const char *fmt, __u64 *data,
                            __u32 data_len) = (void *)165;

#define WORD 16

/* compare the 16 bytes after the Ethernet header with a constant, for each size 0..16 */
SEC("xdp")
int compare_words(struct xdp_md *ctx)
{
    char *data = (void *)(long)ctx->data;
    char *end = (void *)(long)ctx->data_end;
    char buf[WORD + 1] = {};
    if (data + 14 + WORD > end)
        return -1;
    __builtin_memcpy(buf, data + 14, WORD);
    __u32 result = 0;
    for (int n = 1; n <= WORD; n += 3) {
        long r = bpf_strncmp(buf, n, "hello\0world");
        result = (result << 2) | (r & 3);
    }
    result = (result << 2) | (bpf_strncmp(buf, 5, "hello") & 3);
    result = (result << 2) | (bpf_strncmp(buf, WORD, "help") & 3);
    return result;
}

/* format numbers taken from the packet; write the text back into the packet */
SEC("xdp")
int format_numbers(struct xdp_md *ctx)
{
    char *data = (void *)(long)ctx->data;
    char *end = (void *)(long)ctx->data_end;
    if (data + 14 + 96 > end)
        return -1;
    __u64 *words = (void *)(data + 14);
    __u64 args[10];
    args[0] = words[0];
    args[1] = words[1];
    args[2] = words[2];
    args[3] = words[3];
    args[4] = words[4];
    args[5] = words[0] >> 3;
    args[6] = words[1] >> 40;
    args[7] = words[2] & 0xffff;
    args[8] = words[4] & 0x7f;
    args[9] = (long)(data + 14 + 48);   /* %s: a string in the packet */
    char out[96] = {};
    long n = bpf_snprintf(out, sizeof(out), "%d|%u|%x|%lld %llx|%5d|%-4u|%05d|%c|%s|%%",
                          args, sizeof(args));
    if (n < 0)
        return n;
    __builtin_memcpy(data + 14, out, sizeof(out));
    return n;
}

SEC("xdp")
int format_truncated(struct xdp_md *ctx)
{
    char *data = (void *)(long)ctx->data;
    char *end = (void *)(long)ctx->data_end;
    if (data + 14 + 16 > end)
        return -1;
    __u64 args[2] = {123456789, 42};
    char out[8] = {};
    long n = bpf_snprintf(out, sizeof(out), "%llu-%d", args, sizeof(args));
    __builtin_memcpy(data + 14, out, sizeof(out));
    long m = bpf_snprintf(out, 0, "%llu-%d", args, sizeof(args));  /* size 0: only the length */
    return (n << 8) | (m & 0xff);
}

struct loop_state {
    const __u8 *data;
    const __u8 *end;
    __u32 sum;
    __u32 stop;
};

static long step(__u32 index, struct loop_state *st)
{
    const __u8 *p = st->data + (index & 127);
    if (p + 1 > st->end)
        return 1;
    if (*p == st->stop)
        return 1;
    st->sum = st->sum * 31 + *p;
    return 0;
}

SEC("xdp")
int loop_until_byte(struct xdp_md *ctx)
{
    struct loop_state st = {
        .data = (void *)(long)ctx->data,
        .end = (void *)(long)ctx->data_end,
        .sum = 0,
        .stop = 0xee,
    };
    long calls = bpf_loop(200, step, &st, 0);
    long bad = bpf_loop(1, step, &st, 1);          /* flags must be 0 */
    long big = bpf_loop(1 << 24, step, &st, 0);    /* more than BPF_MAX_LOOPS */
    return (st.sum & 0xffff) ^ (calls << 16) ^ ((bad & 0xff) << 24) ^ (big & 0xff000000);
}

char LICENSE[] SEC("license") = "GPL";
