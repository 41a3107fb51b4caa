"""``pybpf prog``, ``pybpf map`` and ``pybpf attach``: the kernel's BPF objects in bpftool's
spirit (same listing layout, ``--json`` for machines), through :mod:`pybpf.kernel` only.

    pybpf prog list | show ID | show --pinned PATH | dump ID      (xlated bytecode, disassembled)
    pybpf map list | show ID | dump ID | update ID KEY VALUE [--flags any|noexist|exist]
             | delete ID KEY | pin ID PATH
    pybpf attach PROG TARGET [--type T] [--program NAME] [--mode generic] [--direction egress]
             [--duration S] [--pin PATH]
"""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime, timezone

import click

from ..errors import KernelError, KernelUnsupported, UsageError
from . import cli


def _k():
    from .. import kernel
    return kernel


def _boot_time_ns() -> int:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime"):
                return int(line.split()[1]) * 1_000_000_000
    return 0


def _loaded_at(load_time_ns: int) -> str:
    stamp = (_boot_time_ns() + load_time_ns) / 1e9
    return datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S%z")


def _prog_fd(ident: str | None, pinned: str | None) -> int:
    from ..kernel import prog as kprog
    if pinned:
        return kprog.prog_from_pin(pinned)
    if ident is None:
        raise UsageError("say which program: an id or --pinned PATH")
    try:
        return kprog.prog_from_id(int(ident))
    except ValueError:
        raise UsageError(f"program id must be a number, not '{ident}'") from None
    except KernelUnsupported:
        raise
    except KernelError as exc:
        raise UsageError(f"no program with id {ident} ({exc})") from None


def _prog_record(info) -> dict:
    return {"id": info.id, "type": info.type, "name": info.name, "tag": info.tag,
            "gpl_compatible": info.gpl_compatible, "loaded_at": _loaded_at(info.load_time_ns),
            "uid": info.created_by_uid, "bytes_xlated": info.xlated_bytes,
            "jited": info.jited_bytes > 0, "bytes_jited": info.jited_bytes,
            "map_ids": info.map_ids, "btf_id": info.btf_id, "run_time_ns": info.run_time_ns,
            "run_cnt": info.run_cnt, "verified_insns": info.verified_insns}


def _prog_text(r: dict) -> str:
    head = f"{r['id']}: {r['type']}  name {r['name']}  tag {r['tag']}"
    if r["gpl_compatible"]:
        head += "  gpl"
    if r["run_cnt"]:
        head += f" run_time_ns {r['run_time_ns']} run_cnt {r['run_cnt']}"
    lines = [head, f"\tloaded_at {r['loaded_at']}  uid {r['uid']}"]
    third = f"\txlated {r['bytes_xlated']}B  jited {r['bytes_jited']}B"
    if r["map_ids"]:
        third += "  map_ids " + ",".join(map(str, r["map_ids"]))
    lines.append(third)
    if r["btf_id"]:
        lines.append(f"\tbtf_id {r['btf_id']}")
    return "\n".join(lines)


def _with_fd(fd: int, func):
    import os
    try:
        return func(fd)
    finally:
        os.close(fd)


@cli.group("prog")
def prog_group() -> None:
    """Inspect programs loaded in the kernel (like bpftool prog)."""


@prog_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def prog_list(as_json: bool) -> None:
    """Every program in the kernel."""
    from ..kernel import prog as kprog
    records = []
    for pid in kprog.iter_prog_ids():
        try:
            fd = kprog.prog_from_id(pid)
        except KernelError:
            continue  # unloaded meanwhile
        records.append(_prog_record(_with_fd(fd, kprog.prog_info)))
    if as_json:
        click.echo(json.dumps(records))
    else:
        for r in records:
            click.echo(_prog_text(r))


@prog_group.command("show")
@click.argument("ident", required=False)
@click.option("--pinned", metavar="PATH", help="a program pinned in bpffs")
@click.option("--json", "as_json", is_flag=True)
def prog_show(ident: str | None, pinned: str | None, as_json: bool) -> None:
    """One program by id (or pin)."""
    from ..kernel import prog as kprog
    record = _prog_record(_with_fd(_prog_fd(ident, pinned), kprog.prog_info))
    click.echo(json.dumps(record) if as_json else _prog_text(record))


@prog_group.command("dump")
@click.argument("ident", required=False)
@click.option("--pinned", metavar="PATH")
@click.option("--json", "as_json", is_flag=True)
def prog_dump(ident: str | None, pinned: str | None, as_json: bool) -> None:
    """The program as the verifier rewrote it (bpftool prog dump xlated)."""
    from .. import isa
    from ..kernel import prog as kprog
    code = _with_fd(_prog_fd(ident, pinned), kprog.prog_xlated)
    if not code:
        raise UsageError("the kernel did not return the instructions (needs CAP_SYS_ADMIN)")
    insns = isa.decode(code, check=False)
    if as_json:
        click.echo(json.dumps({"xlated": code.hex(), "insns": len(insns)}))
        return
    try:
        from ..asm import disassemble
        click.echo(disassemble(insns).rstrip("\n"))
    except ImportError:
        for pc, insn in zip(isa.slot_starts(insns), insns):
            click.echo(f"{pc:4}: {insn.encode().hex()}")


# --- maps -------------------------------------------------------------------------------------

def _map(ident: str | None, pinned: str | None, name: str | None = None):
    kernel = _k()
    if pinned:
        return kernel.KernelMap.from_pin(pinned)
    if name is not None:
        from ..kernel.maps import iter_map_ids, map_info
        for mid in iter_map_ids():
            try:
                kmap = kernel.KernelMap.from_id(mid)
            except KernelUnsupported:
                raise
            except KernelError:
                continue
            if map_info(kmap.fd).name == name:
                return kmap
            kmap.close()
        raise UsageError(f"no map named '{name}'")
    if ident is None:
        raise UsageError("say which map: an id, --name NAME or --pinned PATH")
    try:
        return kernel.KernelMap.from_id(int(ident))
    except ValueError:
        raise UsageError(f"map id must be a number, not '{ident}'") from None
    except KernelUnsupported:
        raise
    except KernelError as exc:
        raise UsageError(f"no map with id {ident} ({exc})") from None


def _map_record(info) -> dict:
    return {"id": info.id, "type": info.type, "name": info.name, "flags": info.flags,
            "bytes_key": info.key_size, "bytes_value": info.value_size,
            "max_entries": info.max_entries, "btf_id": info.btf_id}


def _map_text(r: dict) -> str:
    text = (f"{r['id']}: {r['type']}  name {r['name']}  flags {r['flags']:#x}\n"
            f"\tkey {r['bytes_key']}B  value {r['bytes_value']}B  max_entries {r['max_entries']}")
    if r["btf_id"]:
        text += f"\n\tbtf_id {r['btf_id']}"
    return text


def _hexbytes(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


@cli.group("map")
def map_group() -> None:
    """Inspect and change maps in the kernel (like bpftool map)."""


@map_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def map_list(as_json: bool) -> None:
    """Every map in the kernel."""
    from ..kernel.maps import iter_map_ids, map_info
    records = []
    for mid in iter_map_ids():
        try:
            kmap = _map(str(mid), None)
        except UsageError:
            continue
        with kmap:
            records.append(_map_record(map_info(kmap.fd)))
    if as_json:
        click.echo(json.dumps(records))
    else:
        for r in records:
            click.echo(_map_text(r))


@map_group.command("show")
@click.argument("ident", required=False)
@click.option("--pinned", metavar="PATH")
@click.option("--name", metavar="NAME", help="the first map with this name")
@click.option("--json", "as_json", is_flag=True)
def map_show(ident, pinned, name, as_json) -> None:
    with _map(ident, pinned, name) as kmap:
        record = _map_record(kmap.info())
    click.echo(json.dumps(record) if as_json else _map_text(record))


@map_group.command("dump")
@click.argument("ident", required=False)
@click.option("--pinned", metavar="PATH")
@click.option("--name", metavar="NAME", help="the first map with this name")
@click.option("--json", "as_json", is_flag=True)
def map_dump(ident, pinned, name, as_json) -> None:
    """Every element, as hex bytes (per-CPU values show each CPU)."""
    with _map(ident, pinned, name) as kmap:
        rows = []
        for key, value in kmap.items():
            values = value if isinstance(value, list) else [value]
            rows.append((key, values))
    if as_json:
        click.echo(json.dumps([{"key": k.hex(), "value": v[0].hex()} if len(v) == 1 else
                               {"key": k.hex(), "values": [x.hex() for x in v]}
                               for k, v in rows]))
        return
    for key, values in rows:
        if len(values) == 1:
            click.echo(f"key: {_hexbytes(key)}  value: {_hexbytes(values[0])}")
        else:
            click.echo(f"key: {_hexbytes(key)}")
            for cpu, v in enumerate(values):
                click.echo(f"\tvalue (CPU {cpu:02}): {_hexbytes(v)}")
    click.echo(f"Found {len(rows)} element{'s' if len(rows) != 1 else ''}")


FLAGS = {"any": 0, "noexist": 1, "exist": 2}


@map_group.command("update")
@click.argument("ident")
@click.argument("key")
@click.argument("value")
@click.option("--flags", type=click.Choice(list(FLAGS)), default="any", show_default=True)
def map_update(ident, key, value, flags) -> None:
    """Write VALUE at KEY (both hex bytes, e.g. 01000000)."""
    from .run import parse_hex
    with _map(ident, None) as kmap:
        kmap.update(parse_hex(key, "key"), parse_hex(value, "value"), FLAGS[flags])


@map_group.command("delete")
@click.argument("ident")
@click.argument("key")
def map_delete(ident, key) -> None:
    from .run import parse_hex
    with _map(ident, None) as kmap:
        kmap.delete(parse_hex(key, "key"))


@map_group.command("pin")
@click.argument("ident")
@click.argument("path")
def map_pin(ident, path) -> None:
    with _map(ident, None) as kmap:
        kmap.pin(path)


# --- attach -----------------------------------------------------------------------------------

@cli.command("attach")
@click.argument("prog", type=click.Path(dir_okay=False))
@click.argument("target")
@click.option("--type", "prog_type", help="program type (xdp, sched_cls, tracepoint, ...)")
@click.option("--section", help="ELF section holding the program")
@click.option("--program", "prog_name", help="program (C function) name in an ELF object")
@click.option("--mode", type=click.Choice(["native", "generic"]), help="XDP mode")
@click.option("--direction", type=click.Choice(["ingress", "egress"]), default="ingress",
              show_default=True, help="tc direction")
@click.option("--duration", type=float, help="detach after this many seconds "
              "(default: run until interrupted)")
@click.option("--pin", "pin_path", metavar="PATH",
              help="pin the link in bpffs and exit, leaving the program attached")
@click.option("--json", "as_json", is_flag=True, help="print map contents as JSON at the end")
def attach_command(prog, target, prog_type, section, prog_name, mode, direction, duration,
                   pin_path, as_json) -> None:
    """Load PROG and attach it to TARGET until interrupted; then print its maps.

    TARGET: an interface (xdp, sched_cls), CATEGORY:NAME (tracepoint), a raw tracepoint name,
    /path/binary:SYMBOL (uprobe, for kprobe-type programs), a software event (perf_event),
    a cgroup directory (cgroup_*)."""
    from ..kernel.attach import attach
    from .run import load_program as load_file
    kernel = _k()
    program = load_file(prog, prog_type=prog_type, section=section, name=prog_name)
    options = {}
    if program.prog_type == "xdp" and mode:
        options["mode"] = mode
    if program.prog_type == "sched_cls":
        options["direction"] = direction
    with kernel.load_program(program) as kp:
        link = attach(kp, target, **options)
        with link:
            if pin_path:
                link.pin(pin_path)
                click.echo(f"attached {kp.name} to {link.target}; link pinned at {pin_path} "
                           f"(remove the pin to detach)", err=True)
                return
            click.echo(f"attached {kp.name} to {link.target}; Ctrl-C to detach", err=True)
            _wait(duration)
        dump = {m.name: [[k.hex(), (v if not isinstance(v, list) else b"".join(v)).hex()]
                         for k, v in m.items()] for m in kp.maps
                if m.type not in ("ringbuf", "perf_event_array", "prog_array")}
    if as_json:
        click.echo(json.dumps({"maps": dump}))
    else:
        for name, rows in dump.items():
            click.echo(f"{name}:")
            for k, v in rows:
                click.echo(f"  {k}: {v}")


def _wait(duration: float | None) -> None:
    stop = []
    previous = signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    try:
        end = None if duration is None else time.monotonic() + duration
        while not stop and (end is None or time.monotonic() < end):
            time.sleep(0.05 if end is None else max(0.0, min(0.05, end - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
