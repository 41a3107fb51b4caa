/* Map definitions beyond the corpus: bloom filter with map_extra, perf_event_array with
 * one slot per CPU, a queue, and an LRU per-CPU hash. */
#include "../fixtures/pybpf_fixture.h"

struct { __uint(type, BPF_MAP_TYPE_BLOOM_FILTER); __uint(max_entries, 64); __uint(map_extra, 3); __type(value, __u32); } bloom SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4); __uint(value_size, 4); } perf SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_QUEUE); __uint(max_entries, 8); __type(value, __u64); } q SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH); __uint(max_entries, 8); __type(key, __u32); __type(value, __u64); } lru SEC(".maps");
SEC("xdp") int use(struct xdp_md *c) { __u32 k = 0; return bpf_map_lookup_elem(&lru, &k) != 0; }
char LICENSE[] SEC("license") = "GPL";
