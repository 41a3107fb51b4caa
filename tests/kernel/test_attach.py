"""Attaching programs for real: XDP and tc on a veth between namespaces the test creates,
a socket filter on a UDP socket, a tracepoint counting this process's openat calls exactly,
a uprobe counting calls in a binary the test builds, software perf events, kprobe refusal.
Every link is closed by the test and nothing is left attached (checked with the kernel's
link ids and /proc/self/fd)."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import sys
import subprocess
import time

import pytest

from pybpf import kernel
from pybpf.asm import assemble
from pybpf.errors import KernelUnsupported
from pybpf.kernel import attach as att
from pybpf.kernel.link import iter_link_ids

from .netns import veth_pair

pytestmark = pytest.mark.kernel


@pytest.fixture(autouse=True)
def nothing_left_attached():
    """Every link of a program this test loaded is gone afterwards (other processes' links
    are ignored: the whole team's tests share the kernel)."""
    from pybpf.kernel.link import link_from_id, link_info

    mine: set[int] = set()
    real = kernel.load_program

    def tracking(*args, **kwargs):
        prog = real(*args, **kwargs)
        mine.add(prog.id)
        return prog

    kernel.load_program = tracking
    try:
        yield
    finally:
        kernel.load_program = real
    for _ in range(100):
        left = []
        for link_id in iter_link_ids():
            try:
                fd = link_from_id(link_id)
            except Exception:
                continue
            try:
                if link_info(fd).prog_id in mine:
                    left.append(link_id)
            finally:
                os.close(fd)
        if not left:
            return
        time.sleep(0.01)
    pytest.fail(f"links left behind: {left}")


def u64(b: bytes) -> int:
    return int.from_bytes(b, "little")


# --- XDP -------------------------------------------------------------------------------------

XDP_DROP_ICMP = """
    r2 = *(u32 *)(r1 + 0)
    r3 = *(u32 *)(r1 + 4)
    r4 = r2
    r4 += 34
    if r4 > r3 goto pass
    r5 = *(u16 *)(r2 + 12)
    if r5 != 0x8 goto pass
    r5 = *(u8 *)(r2 + 23)
    if r5 == 1 goto drop
pass:
    r0 = 2
    exit
drop:
    r0 = 1
    exit
"""


def icmp_echo_answered(ns, dst: str) -> bool:
    with ns.entered():
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        s.settimeout(0.5)
        body = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1) + b"pybpf"
        csum = sum(struct.unpack("!%dH" % (len(body) // 2), body[: len(body) // 2 * 2]))
        csum += body[-1] << 8 if len(body) % 2 else 0
        csum = (csum >> 16) + (csum & 0xFFFF)
        csum = ~(csum + (csum >> 16)) & 0xFFFF
        s.sendto(body[:2] + struct.pack("!H", csum) + body[4:], (dst, 0))
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                reply, (src, _) = s.recvfrom(1500)
            except socket.timeout:
                return False
            ihl = (reply[0] & 0xF) * 4
            if src == dst and reply[ihl] == 0:
                return True
        return False
    finally:
        s.close()


def echo_answered_soon(ns, dst: str, seconds: float = 8.0) -> bool:
    """A fresh veth may take a moment (carrier, ARP) under load: retry before concluding."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if icmp_echo_answered(ns, dst):
            return True
    return False


def tcp_round_trip(server_ns, client_ns, addr: str, port: int) -> bool:
    with server_ns.entered():
        srv = socket.socket()
    with client_ns.entered():
        cli = socket.socket()
    try:
        srv.bind((addr, port))
        srv.listen()
        cli.settimeout(5.0)
        try:
            cli.connect((addr, port))
        except OSError:
            return False
        conn, _ = srv.accept()
        with conn:
            cli.sendall(b"hello")
            return conn.recv(5) == b"hello"
    finally:
        cli.close()
        srv.close()


@pytest.mark.parametrize("mode", ["generic", "native"])
def test_xdp_on_a_veth_drops_icmp_while_tcp_passes(mode):
    prog = kernel.load_program(assemble(XDP_DROP_ICMP), prog_type="xdp")
    with prog, veth_pair() as (ns1, ns2):
        assert echo_answered_soon(ns2, "10.200.0.1")
        with ns1.entered():
            link = att.attach_xdp(prog, "v1", mode=mode)
        with link:
            assert link.info().type == "xdp"
            assert not icmp_echo_answered(ns2, "10.200.0.1")
            assert tcp_round_trip(ns1, ns2, "10.200.0.1", 5555)
        assert echo_answered_soon(ns2, "10.200.0.1")      # detached on close


# --- tc ---------------------------------------------------------------------------------------

def port_be(port: int) -> int:
    return int.from_bytes(port.to_bytes(2, "big"), "little")


TC_REWRITE_PORT = f"""
    r6 = r1
    r2 = *(u32 *)(r6 + 76)
    r3 = *(u32 *)(r6 + 80)
    r4 = r2
    r4 += 42
    if r4 > r3 goto out
    r5 = *(u16 *)(r2 + 12)
    if r5 != 0x8 goto out
    r5 = *(u8 *)(r2 + 14)
    if r5 != 0x45 goto out
    r5 = *(u8 *)(r2 + 23)
    if r5 != 17 goto out
    r5 = *(u16 *)(r2 + 36)
    if r5 != {port_be(7777)} goto out
    r1 = r6
    r2 = 40
    r3 = {port_be(7777)}
    r4 = {port_be(8888)}
    r5 = 2
    call 11
    *(u16 *)(r10 - 2) = {port_be(8888)}
    r1 = r6
    r2 = 36
    r3 = r10
    r3 += -2
    r4 = 2
    r5 = 0
    call 9
out:
    r0 = 0
    exit
"""


def test_a_tc_program_rewrites_the_destination_port_of_udp_packets():
    prog = kernel.load_program(assemble(TC_REWRITE_PORT), prog_type="sched_cls")
    with prog, veth_pair() as (ns1, ns2):
        with ns1.entered():
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            link = att.attach_tcx(prog, "v1", "ingress")
        with ns2.entered():
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with rx, tx, link:
            assert link.info().type == "tcx"
            rx.bind(("10.200.0.1", 8888))
            rx.settimeout(5.0)
            tx.sendto(b"to 7777", ("10.200.0.1", 7777))
            data, _ = rx.recvfrom(100)
            assert data == b"to 7777"


# --- socket filter ----------------------------------------------------------------------------

SMALL_ONLY = """
    r0 = *(u32 *)(r1 + 0)
    if r0 > 40 goto drop
    r0 = 0xffff
    exit
drop:
    r0 = 0
    exit
"""


def test_a_socket_filter_limits_what_a_udp_socket_receives():
    prog = kernel.load_program(assemble(SMALL_ONLY))
    with prog, veth_pair() as (ns1, _ns2):
        with ns1.entered():
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with rx, tx:
            rx.bind(("127.0.0.1", 0))
            rx.settimeout(0.3)
            with att.attach_socket(prog, rx):
                for payload in (b"one", b"x" * 200, b"two", b"y" * 100, b"three"):
                    tx.sendto(payload, rx.getsockname())
                got = []
                try:
                    while True:
                        got.append(rx.recv(1000))
                except socket.timeout:
                    pass
                assert got == [b"one", b"two", b"three"]
            tx.sendto(b"z" * 200, rx.getsockname())       # detached: everything arrives
            assert rx.recv(1000) == b"z" * 200


# --- tracepoints ------------------------------------------------------------------------------

def count_calls_of(pid: int) -> str:
    return f"""
    .map counts array key=4 value=8 max_entries=1
    call 14
    r0 >>= 32
    if r0 != {pid} goto out
    *(u32 *)(r10 - 4) = 0
    r2 = r10
    r2 += -4
    r1 = counts ll
    call 1
    if r0 == 0 goto out
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
out:
    r0 = 0
    exit
    """


def test_a_tracepoint_program_counts_this_process_openat_calls_exactly():
    prog = kernel.load_program(assemble(count_calls_of(os.getpid())), prog_type="tracepoint")
    with prog:
        counts = prog.map("counts")
        link = att.attach_tracepoint(prog, "syscalls", "sys_enter_openat")
        for _ in range(37):
            os.close(os.open("/dev/null", os.O_RDONLY))
        link.close()
        os.close(os.open("/dev/null", os.O_RDONLY))       # after detaching: not counted
        assert u64(counts[0]) == 37


def test_a_raw_tracepoint_program_sees_this_process_syscalls():
    prog = kernel.load_program(assemble(count_calls_of(os.getpid())),
                               prog_type="raw_tracepoint")
    with prog:
        with att.attach_raw_tracepoint(prog, "sys_enter") as link:
            assert link.info().type == "raw_tracepoint"
            for _ in range(20):
                os.getppid()
        seen = u64(prog.map("counts")[0])
        assert seen >= 20


# --- uprobes ----------------------------------------------------------------------------------

TICKER_C = r"""
#include <stdlib.h>
__attribute__((noinline)) int tick(int x) { __asm__ volatile("" ::: "memory"); return x + 1; }
int main(int argc, char **argv) {
    int n = atoi(argv[1]), s = 0;
    for (int i = 0; i < n; i++) s = tick(s);
    return s == n ? 0 : 1;
}
"""

COUNT_ALL = """
    .map counts array key=4 value=8 max_entries=1
    *(u32 *)(r10 - 4) = 0
    r2 = r10
    r2 += -4
    r1 = counts ll
    call 1
    if r0 == 0 goto out
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
out:
    r0 = 0
    exit
"""


@pytest.fixture
def ticker(tmp_path):
    cc = shutil.which("clang-19") or shutil.which("clang") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler to build the uprobe target")
    src = tmp_path / "ticker.c"
    src.write_text(TICKER_C)
    binary = tmp_path / "ticker"
    subprocess.run([cc, "-O1", "-o", str(binary), str(src)], check=True)
    return str(binary)


@pytest.mark.parametrize("retprobe", [False, True])
def test_a_uprobe_counts_the_calls_of_a_function_in_a_test_binary(ticker, retprobe):
    prog = kernel.load_program(assemble(COUNT_ALL), prog_type="kprobe")
    with prog:
        with att.attach_uprobe(prog, ticker, "tick", retprobe=retprobe):
            subprocess.run([ticker, "7"], check=True)
            subprocess.run([ticker, "5"], check=True)
        subprocess.run([ticker, "3"], check=True)          # detached
        assert u64(prog.map("counts")[0]) == 12


def test_the_uprobe_offset_is_the_file_offset_nm_and_readelf_agree_on(ticker):
    out = subprocess.run(["nm", ticker], capture_output=True, text=True).stdout
    address = next(int(line.split()[0], 16) for line in out.splitlines()
                   if line.endswith(" tick"))
    segs = subprocess.run(["readelf", "-lW", ticker], capture_output=True, text=True).stdout
    for line in segs.splitlines():
        parts = line.split()
        if parts[:1] == ["LOAD"]:
            offset, vaddr, memsz = int(parts[1], 16), int(parts[2], 16), int(parts[5], 16)
            if vaddr <= address < vaddr + memsz:
                assert att.symbol_offset(ticker, "tick") == address - vaddr + offset
                return
    pytest.fail("tick not in any LOAD segment")


# --- perf events, kprobes, cgroups -------------------------------------------------------------

def test_a_perf_event_program_samples_the_cpu_clock_at_a_frequency():
    prog = kernel.load_program(assemble(COUNT_ALL), prog_type="perf_event")
    with prog:
        with att.attach_perf_event(prog, "cpu-clock", frequency=1000):
            end = time.monotonic() + 0.2
            while time.monotonic() < end:
                pass
        assert u64(prog.map("counts")[0]) > 10


def test_kprobes_are_refused_naming_the_missing_kernel_option():
    from pybpf.kernel.features import kprobes_unavailable_reason

    if kprobes_unavailable_reason() is None:
        pytest.skip("this kernel has kprobes")
    prog = kernel.load_program(assemble(COUNT_ALL), prog_type="kprobe")
    with prog, pytest.raises(KernelUnsupported) as info:
        att.attach_kprobe(prog, "do_sys_openat2")
    assert "CONFIG_KPROBE" in str(info.value) and "\n" not in str(info.value)


def test_a_cgroup_skb_program_sees_the_traffic_of_its_cgroup(tmp_path):
    root = "/sys/fs/cgroup/unified" if os.path.ismount("/sys/fs/cgroup/unified") else \
        "/sys/fs/cgroup"
    if not os.path.exists(os.path.join(root, "cgroup.procs")):
        pytest.skip("no cgroup v2 hierarchy")
    group = os.path.join(root, f"pybpf-test-{os.getpid()}")
    os.mkdir(group)
    prog = kernel.load_program(assemble(COUNT_ALL.replace("r0 = 0", "r0 = 1")),
                               prog_type="cgroup_skb")
    try:
        with prog, att.attach_cgroup(prog, group, "cgroup_inet_egress"):
            with open(os.path.join(root, "cgroup.procs")) as f:
                assert str(os.getpid()) in f.read().split()
            with open(os.path.join(group, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    for _ in range(3):
                        s.sendto(b"x", ("127.0.0.1", 9))
            finally:
                with open(os.path.join(root, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            assert u64(prog.map("counts")[0]) >= 3
    finally:
        os.rmdir(group)


def test_a_pinned_link_outlives_its_fd_until_unpinned():
    path = f"/sys/fs/bpf/pybpf_link_{os.getpid()}"
    prog = kernel.load_program(assemble(count_calls_of(os.getpid())),
                               prog_type="raw_tracepoint")
    with prog:
        link = att.attach_raw_tracepoint(prog, "sys_enter")
        link_id = link.info().id
        link.pin(path)
        link.close()
        try:
            assert link_id in set(iter_link_ids())
        finally:
            os.unlink(path)


def test_a_link_dropped_without_close_is_detached_by_the_garbage_collector():
    import gc

    prog = kernel.load_program(assemble(count_calls_of(os.getpid())),
                               prog_type="raw_tracepoint")
    with prog:
        link = att.attach_raw_tracepoint(prog, "sys_enter")
        link_id = link.info().id
        del link
        gc.collect()
        for _ in range(100):
            if link_id not in set(iter_link_ids()):
                break
            time.sleep(0.01)
        assert link_id not in set(iter_link_ids())


def test_links_still_open_at_interpreter_exit_are_detached(tmp_path):
    """A process that exits with a socket filter still attached detaches it in its exit
    handlers: the socket lives on in the parent (a passed fd), and must not stay filtered."""
    script = tmp_path / "leave.py"
    script.write_text(f"""
import os, socket, sys
from pybpf import kernel
from pybpf.asm import assemble
from pybpf.kernel import attach
prog = kernel.load_program(assemble('''{SMALL_ONLY}'''))
sock = socket.fromfd(int(sys.argv[1]), socket.AF_INET, socket.SOCK_DGRAM)
link = attach.attach_socket(prog, sock)
print("attached", flush=True)
""")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(1.0)
        out = subprocess.run([sys.executable, str(script), str(rx.fileno())],
                             pass_fds=[rx.fileno()], capture_output=True, text=True)
        assert out.stdout.strip() == "attached", out.stderr
        tx.sendto(b"z" * 200, rx.getsockname())          # the filter would drop this
        assert rx.recv(1000) == b"z" * 200


# --- bad targets --------------------------------------------------------------------------------

def test_bad_attach_targets_are_refused_with_what_is_wrong(ticker):
    from pybpf.errors import UsageError

    with kernel.load_program(assemble(COUNT_ALL), prog_type="tracepoint") as tp:
        with pytest.raises(UsageError, match="no tracepoint syscalls:sys_enter_nothing"):
            tp.attach("syscalls:sys_enter_nothing")
    with kernel.load_program(assemble("r0 = 2\nexit\n"), prog_type="xdp") as xdp:
        with pytest.raises(UsageError, match="no network interface 'nosuch0'"):
            xdp.attach("nosuch0")
    with kernel.load_program(assemble("r0 = 0\nexit\n"), prog_type="sched_cls") as tc:
        with pytest.raises(UsageError, match="ingress or egress"):
            att.attach_tcx(tc, "lo", "sideways")
    with kernel.load_program(assemble(COUNT_ALL), prog_type="kprobe") as up:
        with pytest.raises(UsageError, match="no function symbol 'nothing_here'"):
            att.attach_uprobe(up, ticker, "nothing_here")
    with kernel.load_program(assemble("r0 = 0\nexit\n")) as sf:
        with pytest.raises(UsageError, match="socket filters attach to a socket"):
            att.attach(sf, "lo")


def test_attach_picks_the_hook_by_program_type():
    prog = kernel.load_program(assemble(count_calls_of(os.getpid())), prog_type="tracepoint")
    with prog:
        with prog.attach("syscalls:sys_enter_getppid") as link:
            assert link.kind == "tracepoint"
            for _ in range(5):
                os.getppid()
        assert u64(prog.map("counts")[0]) == 5
