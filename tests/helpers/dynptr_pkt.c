/* Packet dynptrs at run time: bpf_dynptr_from_skb / bpf_dynptr_from_xdp, reads and writes
 * through bpf_dynptr_read / bpf_dynptr_write, slices with bpf_dynptr_slice[_rdwr]. Every
 * program takes its offsets and flags from the packet's first bytes after the Ethernet header,
 * so test_dynptr_pkt.py can compare pybpf's engines with the kernel (BPF_PROG_TEST_RUN) on
 * generated packets: answers, bytes read and the packet written. */
#include "pybpf_dynptr.h"

static long (*bpf_xdp_adjust_head)(struct xdp_md *ctx, int delta) = (void *)44;

/* the control bytes: at offset 14 in the packet, read with a dynptr as well */
struct ctl {
	__u8 off;
	__u8 off2;
	__u8 flags;
	__u8 arg;
};

static __always_inline __u32 answer(long ret, __u64 word)
{
	if (ret)
		return 0x10000 | (-ret & 0xff);
	return (__u32)(word ^ (word >> 32)) & 0xffff;
}

/* read 8 bytes at a packet-chosen offset: 0 and the bytes, or -E2BIG past the end */
SEC("tc")
int skb_read(struct __sk_buff *skb)
{
	struct bpf_dynptr d;
	struct ctl c = {};
	__u64 word = 0;
	long ret;

	bpf_dynptr_from_skb(skb, 0, &d);
	if (bpf_dynptr_read(&c, sizeof(c), &d, 14, 0))
		return 0xdead;
	ret = bpf_dynptr_read(&word, 8, &d, c.off, c.flags & 1);
	return answer(ret, word);
}

/* write 2 bytes at one offset with the packet's flags (checksum and hash flags pass to the
 * skb; unknown flags are -EINVAL), then slice 4 bytes at another */
SEC("tc")
int skb_write_then_slice(struct __sk_buff *skb)
{
	struct bpf_dynptr d;
	struct ctl c = {};
	__u16 v = 0xa55a;
	__u8 buf[4];
	__u8 *p;
	long ret;

	bpf_dynptr_from_skb(skb, 0, &d);
	if (bpf_dynptr_read(&c, sizeof(c), &d, 14, 0))
		return 0xdead;
	ret = bpf_dynptr_write(&d, c.off, &v, sizeof(v), c.flags & 7);
	p = bpf_dynptr_slice(&d, c.off2, buf, sizeof(buf));
	if (!p)
		return 0x20000 | (-ret & 0xff);
	return (ret ? 0x40000 | (-ret & 0xff) << 8 : 0) ^ p[0] ^ p[1] << 4 ^ p[2] << 8 ^ p[3] << 12;
}

/* write through a writable slice: the packet changes where the slice points */
SEC("tc")
int skb_slice_rdwr(struct __sk_buff *skb)
{
	struct bpf_dynptr d;
	struct ctl c = {};
	__u8 *p;

	bpf_dynptr_from_skb(skb, 0, &d);
	if (bpf_dynptr_read(&c, sizeof(c), &d, 14, 0))
		return 0xdead;
	p = bpf_dynptr_slice_rdwr(&d, c.off, 0, 6);
	if (!p)
		return 0xbeef;
	p[0] = c.arg;
	p[5] = ~c.arg;
	return p[1];
}

/* a dynptr made with flags is null: the kfunc says -EINVAL and reads through it fail too */
SEC("tc")
int skb_bad_flags(struct __sk_buff *skb)
{
	struct bpf_dynptr d;
	__u64 word = 0;
	int made;
	long ret;

	made = bpf_dynptr_from_skb(skb, skb->len & 3, &d);
	ret = bpf_dynptr_read(&word, 8, &d, 0, 0);
	return (-made & 0xff) << 8 | (-ret & 0xff);
}

/* a socket filter may not write packet data: its skb dynptrs are read-only (a write says
 * -EINVAL; the verifier refuses a writable slice) */
SEC("socket")
int socket_readonly(struct __sk_buff *skb)
{
	struct bpf_dynptr d;
	__u8 v = 7;
	__u8 *q;
	long ret;

	bpf_dynptr_from_skb(skb, 0, &d);
	ret = bpf_dynptr_write(&d, 0, &v, 1, 0);
	q = bpf_dynptr_slice(&d, 0, 0, 4);
	return (-ret & 0xff) | (q ? 0x200 | q[3] << 16 : 0);
}

/* the same in a cgroup_skb program */
SEC("cgroup_skb/ingress")
int cgroup_readonly(struct __sk_buff *skb)
{
	struct bpf_dynptr d;
	__u8 v = 7;
	__u8 *q;
	long ret;

	bpf_dynptr_from_skb(skb, 0, &d);
	ret = bpf_dynptr_write(&d, 0, &v, 1, 0);
	q = bpf_dynptr_slice(&d, 0, 0, 4);
	return q && q[0] == 0x45 && ret == -22;
}

SEC("xdp")
int xdp_read_write(struct xdp_md *ctx)
{
	struct bpf_dynptr d;
	struct ctl c = {};
	__u32 word = 0;
	__u8 *p;
	long r1, r2;

	bpf_dynptr_from_xdp(ctx, 0, &d);
	if (bpf_dynptr_read(&c, sizeof(c), &d, 14, 0))
		return 0xdead;
	r1 = bpf_dynptr_read(&word, 4, &d, c.off, 0);
	r2 = bpf_dynptr_write(&d, c.off2, &word, 4, c.flags & 1);
	p = bpf_dynptr_slice_rdwr(&d, c.arg, 0, 2);
	if (p)
		p[1] = 0x5a;
	return (-r1 & 0xff) << 24 | (-r2 & 0xff) << 16 | (p ? 0x8000 : 0) | (word & 0x7fff);
}

/* the dynptr keeps its size; after the head moves, reads start at the new head and fail
 * where the packet no longer reaches */
SEC("xdp")
int xdp_after_adjust_head(struct xdp_md *ctx)
{
	struct bpf_dynptr d;
	struct ctl c = {};
	__u32 word = 0;
	long ret;

	bpf_dynptr_from_xdp(ctx, 0, &d);
	if (bpf_dynptr_read(&c, sizeof(c), &d, 14, 0))
		return 0xdead;
	if (bpf_xdp_adjust_head(ctx, c.arg & 15))
		return 0xbad;
	ret = bpf_dynptr_read(&word, 4, &d, c.off, 0);
	return ret ? 0x10000 | (-ret & 0xff) : word & 0xffff;
}

char LICENSE[] SEC("license") = "GPL";
