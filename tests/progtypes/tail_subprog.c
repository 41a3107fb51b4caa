/* A tail call made inside a bpf-to-bpf subprogram (the kernel needs BTF for that). */
#include "pybpf_fixture.h"

int target(struct xdp_md *ctx);

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 4);
    __uint(key_size, sizeof(__u32));
    __array(values, int(struct xdp_md *));
} jt SEC(".maps") = {
    .values = { [1] = (void *)&target },
};

SEC("xdp")
int target(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    return data_end - data;
}

static __noinline int jump(struct xdp_md *ctx, __u32 slot)
{
    bpf_tail_call(ctx, &jt, slot);
    return 5;
}

SEC("xdp")
int entry(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    if (data + 1 > (unsigned char *)data_end)
        return 0;
    return jump(ctx, data[0] & 3) * 10 + 1;
}

char LICENSE[] SEC("license") = "GPL";
