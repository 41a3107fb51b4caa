/* Kernel functions (kfuncs) the engines run: the numeric iterator behind libbpf's bpf_for and
 * bpf_repeat, and the RCU read-side markers; compared with the kernel in test_kfuncs.py. */
#include "pybpf_fixture.h"

struct bpf_iter_num { __u64 __opaque[1]; } __attribute__((aligned(8)));

extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
extern void bpf_preempt_disable(void) __ksym;
extern void bpf_preempt_enable(void) __ksym;
extern int bpf_modify_return_test_tp(int nonce) __ksym;

/* sum the first n bytes after the Ethernet header, n from the packet (at most 32) */
SEC("xdp")
int sum_payload(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    unsigned char *end = (void *)(long)ctx->data_end;
    struct bpf_iter_num it;
    int *v, n, sum = 0;

    if (data + 15 + 32 > end)
        return 0;
    n = data[14] & 31;
    bpf_iter_num_new(&it, 0, n);
    while ((v = bpf_iter_num_next(&it))) {
        unsigned int i = *v;
        unsigned char *p;
        if (i >= 32)
            break;
        p = data + 15 + i;
        if (p + 1 > end)        /* a variable offset needs its own bounds check */
            break;
        sum += *p;
    }
    bpf_iter_num_destroy(&it);
    return sum;
}

/* what bpf_iter_num_new answers for a range taken from the packet, and how many steps follow */
SEC("xdp")
int range_steps(struct xdp_md *ctx)
{
    int *words = (void *)(long)ctx->data;
    int *end = (void *)(long)ctx->data_end;
    struct bpf_iter_num it;
    int err, steps = 0;

    if (words + 4 > end)
        return 0;
    err = bpf_iter_num_new(&it, words[1], words[2]);
    while (bpf_iter_num_next(&it) && steps < 1000)
        steps++;
    bpf_iter_num_destroy(&it);
    return (err & 0xffff) << 16 | steps;
}

SEC("xdp")
int rcu_section(struct xdp_md *ctx)
{
    bpf_rcu_read_lock();
    bpf_rcu_read_unlock();
    bpf_preempt_disable();
    bpf_preempt_enable();
    return 2;
}

/* a scalar kfunc: the packet's first word through bpf_modify_return_test_tp */
SEC("xdp")
int scalar_kfunc(struct xdp_md *ctx)
{
    int *words = (void *)(long)ctx->data;
    int *end = (void *)(long)ctx->data_end;

    if (words + 1 > end)
        return 0;
    return bpf_modify_return_test_tp(words[0]) & 0xffff;
}

char LICENSE[] SEC("license") = "GPL";
