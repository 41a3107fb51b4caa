"""The network tap: pcap/pcapng files (via dpkt), live capture on AF_PACKET with a classic
filter attached in the kernel (SO_ATTACH_FILTER), and tcpdump-style packet summaries."""
