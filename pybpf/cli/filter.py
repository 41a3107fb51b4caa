"""``pybpf filter`` (compile a pcap-filter expression, print it like tcpdump -d/-dd/-ddd) and
``pybpf tap`` (the network tap: read a pcap/pcapng file or capture live, filter, summarise)."""

from __future__ import annotations

import json
import sys

import click

from . import cli


@cli.command("filter")
@click.argument("expression", nargs=-1, required=False)
@click.option("-d", "dump", count=True, help="-d: readable, -dd: C array, -ddd: decimal")
@click.option("-y", "linktype", default="EN10MB", show_default=True,
              help="link type: EN10MB, RAW, LINUX_SLL, LINUX_SLL2, NULL")
@click.option("-O", "no_optimize", is_flag=True, help="do not run the optimiser (like tcpdump -O)")
@click.option("-s", "snaplen", type=int, default=262144, show_default=True,
              help="return value for accepted packets")
@click.option("--linux", "linux_ext", is_flag=True,
              help="use Linux ancillary loads (vlan tags) as a live capture would")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def filter_command(expression, dump, linktype, no_optimize, snaplen, linux_ext, as_json):
    """Compile a pcap-filter(7) EXPRESSION to classic BPF."""
    from ..cbpf.codegen import compile_expression, linktype_name
    from ..cbpf.printer import FORMATS, format_d

    expr = " ".join(expression)
    name = linktype_name(linktype)
    insns = compile_expression(expr, name, snaplen=snaplen, optimize=not no_optimize,
                               linux_ext=linux_ext)
    if as_json:
        click.echo(json.dumps({
            "expression": expr, "linktype": name, "count": len(insns),
            "instructions": [list(i.astuple()) for i in insns], "text": format_d(insns)}))
        return
    sys.stdout.write(FORMATS[min(max(dump, 1), 3)](insns))


@cli.command("tap")
@click.argument("expression", nargs=-1, required=False)
@click.option("-r", "read_file", type=click.Path(dir_okay=False), help="read packets from a pcap/pcapng file")
@click.option("-i", "interface", help="capture live on this interface (AF_PACKET)")
@click.option("-w", "write_file", type=click.Path(dir_okay=False), help="write matching packets to a pcap file")
@click.option("-c", "count", type=int, default=None, help="stop after COUNT matching packets")
@click.option("-t", "timeout", type=float, default=None, help="live capture: stop after this many seconds")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per packet")
def tap_command(expression, read_file, interface, write_file, count, timeout, as_json):
    """A tcpdump-like network tap: filter packets from -r FILE or -i IFACE with EXPRESSION."""
    from ..capture.tap import run_tap
    from ..errors import UsageError

    if (read_file is None) == (interface is None):
        raise UsageError("give exactly one of -r FILE or -i IFACE")
    expr = " ".join(expression)

    def show(record, summary):
        if as_json:
            click.echo(json.dumps({"time": record.ts, "caplen": len(record.data),
                                   "length": record.wirelen, "summary": summary}))
        else:
            click.echo(summary_line(record, summary))

    from ..capture.summary import summary_line
    stats = run_tap(expr, read_file=read_file, interface=interface, write_file=write_file,
                    count=count, timeout=timeout, on_packet=show)
    if interface is not None:
        # like tcpdump's exit report; "received" counts what crossed from the kernel, which
        # with the filter attached there is only what matched
        click.echo(f"{stats.matched} packets captured", err=True)
        click.echo(f"{stats.seen} packets received from the kernel", err=True)
