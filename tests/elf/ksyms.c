/* __ksym externs: kernel functions (kfuncs), found by their kernel BTF ids. */
#include "../fixtures/pybpf_fixture.h"

struct task_struct { int tgid; } __attribute__((preserve_access_index));

extern struct task_struct *bpf_task_from_pid(int pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;

const volatile int target = 0;

SEC("xdp")
int ksyms(struct xdp_md *ctx)
{
    int found = 0;
    struct task_struct *t = bpf_task_from_pid(target);
    if (t) {
        found = t->tgid == target;
        bpf_task_release(t);
    }
    return found;
}

char LICENSE[] SEC("license") = "GPL";
