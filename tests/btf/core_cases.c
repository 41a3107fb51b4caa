/* CO-RE relocations of every kind, against the running kernel's types. */
#include "../fixtures/pybpf_fixture.h"

/* a flavor: matches the kernel's task_struct by its essential name */
struct task_struct___pybpf {
    int tgid;
    struct task_struct___pybpf *real_parent;
    char comm[16];
    unsigned int sched_reset_on_fork: 1;
    long field_missing_in_the_kernel;
} __attribute__((preserve_access_index));

/* a member the kernel keeps inside anonymous unions/structs */
struct sk_buff {
    struct sk_buff *next;
    unsigned int len;
} __attribute__((preserve_access_index));

struct pybpf_no_such_struct { int x; };

enum pid_type { PIDTYPE_PID, PIDTYPE_TGID, PIDTYPE_PGID, PIDTYPE_SID, PIDTYPE_MAX };
enum pybpf_no_such_enum { PYBPF_NOPE = 7 };

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 32);
    __type(key, __u32);
    __type(value, __u64);
} out SEC(".maps");

static __always_inline void put(__u32 k, __u64 v)
{
    bpf_map_update_elem(&out, &k, &v, BPF_ANY);
}

SEC("kprobe/do_nanosleep")
int core_cases(void *ctx)
{
    struct task_struct___pybpf *t = (void *)bpf_get_current_task();
    struct sk_buff *skb = 0;
    int tgid = 0;
    BPF_CORE_READ_INTO(&tgid, t, tgid);
    put(0, tgid);
    put(1, __builtin_preserve_field_info(t->comm[3], 0));          /* byte offset */
    put(2, __builtin_preserve_field_info(t->comm, 1));             /* byte size */
    put(3, __builtin_preserve_field_info(t->field_missing_in_the_kernel, 2));
    put(4, __builtin_preserve_field_info(t->tgid, 3));             /* signed */
    put(5, __builtin_preserve_field_info(t->sched_reset_on_fork, 0));
    put(6, __builtin_preserve_field_info(t->sched_reset_on_fork, 1));
    put(7, __builtin_preserve_field_info(t->sched_reset_on_fork, 4)); /* lshift */
    put(8, __builtin_preserve_field_info(t->sched_reset_on_fork, 5)); /* rshift */
    put(9, __builtin_preserve_field_info(skb->len, 0));
    put(10, __builtin_preserve_field_info(skb->next, 0));
    put(11, __builtin_preserve_type_info(*(struct task_struct___pybpf *)0, 0)); /* exists */
    put(12, __builtin_preserve_type_info(*(struct task_struct___pybpf *)0, 1)); /* size */
    put(13, __builtin_preserve_type_info(*(struct pybpf_no_such_struct *)0, 0));
    put(14, __builtin_preserve_enum_value(*(enum pid_type *)PIDTYPE_SID, 0));
    put(15, __builtin_preserve_enum_value(*(enum pid_type *)PIDTYPE_SID, 1));
    put(16, __builtin_preserve_enum_value(*(enum pybpf_no_such_enum *)PYBPF_NOPE, 0));
    put(17, __builtin_btf_type_id(*(struct task_struct___pybpf *)0, 1) != 0); /* target id */
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
