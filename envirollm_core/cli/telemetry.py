"""`envirollm detect` and `envirollm track`: what is measured here, and a measured window."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import psutil

from envirollm_core.cli.common import add_json_option, emit_json, finite_float, format_table, info, interrupt_on_sigterm
from envirollm_core.errors import UsageError
from envirollm_core.figures import format_figure
from envirollm_core.telemetry.processes import LlmServer, detect_llm_servers
from envirollm_core.telemetry.measurement import ComponentInfo, Measurement, component_kind
from envirollm_core.telemetry.sampler import DEFAULT_INTERVAL_S, MAX_INTERVAL_S, MIN_INTERVAL_S, Sampler
from envirollm_core.telemetry.system_info import is_virtual_machine, system_info
from envirollm_core.units import mib_to_gb, wh_to_j

LIVE_REFRESH_S = 1.0
WINDOW = "track"


def register(subcommands: argparse._SubParsersAction) -> None:
    detect = subcommands.add_parser(
        "detect",
        help="show this machine, how each part's energy is measured, and the running LLM servers",
        description=(
            "Show the machine, each energy component with its source (counter, power-integral, average-power, "
            "estimate, unmeasured), and the LLM servers running now (Ollama, LM Studio, llama.cpp, "
            "llama-cpp-python, KoboldCPP, text-generation-webui, vLLM, LocalAI, GPT4All, Jan, mlx_lm, SGLang)."
        ),
    )
    add_json_option(detect)
    detect.set_defaults(handler=run_detect)

    track = subcommands.add_parser(
        "track",
        help="measure energy, power, CPU, RAM and GPU while something runs (live table, then a summary)",
        description=(
            "Open an energy window and sample the machine until --duration ends or Ctrl-C, showing a live table "
            "on a terminal, then print the window's summary. Optionally follow processes (an LLM server with "
            "its children): --auto (every detected LLM server), -p NAME (a server kind such as ollama, or a "
            "process name) or --pid PID."
        ),
    )
    target = track.add_mutually_exclusive_group()
    target.add_argument("--auto", action="store_true", help="follow every LLM server `envirollm detect` finds")
    target.add_argument("-p", "--process", metavar="NAME", help="follow an LLM server kind (e.g. ollama) or processes with this name")
    target.add_argument("--pid", type=int, metavar="PID", help="follow this process and its children")
    track.add_argument("--interval", type=finite_float, default=DEFAULT_INTERVAL_S, metavar="S",
                       help=f"sampling interval in seconds (default {DEFAULT_INTERVAL_S}; {MIN_INTERVAL_S} to {MAX_INTERVAL_S})")
    track.add_argument("--duration", type=finite_float, default=None, metavar="S", help="stop after S seconds (default: at Ctrl-C)")
    add_json_option(track)
    track.set_defaults(handler=run_track)


# --- detect ---------------------------------------------------------------------------------------


def run_detect(args: argparse.Namespace) -> int:
    machine = system_info()
    virtual = is_virtual_machine()
    with Sampler() as sampler:
        components, notes = sampler.components(), sampler.notes
    servers = detect_llm_servers()
    if args.json:
        emit_json({
            "system": dataclasses.asdict(machine),
            "virtual_machine": virtual,
            "components": [dataclasses.asdict(c) for c in components],
            "notes": list(notes),
            "servers": [dataclasses.asdict(s) for s in servers],
        })
        return 0
    info(f"{machine.cpu_model}, {machine.cpu_logical_cores} logical CPUs, {format_figure(machine.ram_total_gb, 'GB')} GB RAM, "
         f"{machine.os_name}{' (virtual machine)' if virtual else ''}")
    for gpu in machine.gpus:
        info(f"GPU {gpu.index}: {gpu.name}, {format_figure(gpu.memory_total_mb, 'MB')} MB, driver {gpu.driver_version}")
    info("")
    info(format_table(["component", "kind", "source", "how"], [[c.name, c.kind, c.source, c.note] for c in components]))
    for note in notes:
        info(f"note: {note}")
    info("")
    if servers:
        info(format_table(["server", "pid", "CPU %", "RSS MB", "threads", "GPU MB", "children", "command"], [_server_row(s) for s in servers]))
    else:
        info("No LLM server is running (looked for Ollama, LM Studio, llama.cpp, llama-cpp-python, KoboldCPP, "
             "text-generation-webui, vLLM, LocalAI, GPT4All, Jan, mlx_lm, SGLang).")
    return 0


def _server_row(server: LlmServer) -> list[str]:
    command = " ".join(server.cmdline)
    return [server.name, str(server.pid), format_figure(server.cpu_percent, "%"), format_figure(server.rss_mb, "MB"),
            str(server.threads), format_figure(server.gpu_mem_mb, "MB"), str(len(server.children)),
            command if len(command) <= 60 else command[:57] + "..."]


# --- track ----------------------------------------------------------------------------------------


def run_track(args: argparse.Namespace) -> int:
    if args.duration is not None and not args.duration > 0:
        raise UsageError(f"--duration must be above 0 seconds, not {args.duration}")
    if not MIN_INTERVAL_S <= args.interval <= MAX_INTERVAL_S:
        raise UsageError(f"--interval must be between {MIN_INTERVAL_S} and {MAX_INTERVAL_S} seconds, not {args.interval}")
    targets = _resolve_targets(args)
    interrupt_on_sigterm()
    live = sys.stderr.isatty()
    with Sampler(interval_s=args.interval) as sampler:
        sampler.begin_window(WINDOW, pids=list(targets))
        for note in sampler.notes:
            info(f"note: {note}")
        info(f"tracking {_describe(targets)} every {args.interval:g} s; "
             + (f"for {args.duration:g} s" if args.duration else "Ctrl-C to stop"))
        try:
            _wait(sampler, args.duration, live)
        except KeyboardInterrupt:
            pass
        measurement = sampler.end_window(WINDOW)
        components = sampler.components()
    if args.json:
        emit_json(track_payload(measurement, components, targets, args.interval, sampler.notes))
    else:
        info(_summary(measurement, components, targets))
    return 0


def _resolve_targets(args: argparse.Namespace) -> dict[int, str]:
    """pid -> a label, for the processes to follow."""
    if args.pid is not None:
        if not psutil.pid_exists(args.pid):
            raise UsageError(f"no process with pid {args.pid} is running")
        return {args.pid: _process_name(args.pid)}
    if args.auto:
        servers = detect_llm_servers()
        if not servers:
            raise UsageError("--auto found no running LLM server (`envirollm detect` lists them); use --pid or -p")
        return {s.pid: s.name for s in servers}
    if args.process:
        return _processes_named(args.process)
    return {}


def _processes_named(name: str) -> dict[int, str]:
    wanted = name.lower()
    servers = [s for s in detect_llm_servers() if s.name == wanted]
    if servers:
        return {s.pid: s.name for s in servers}
    own = psutil.Process().pid
    matches = {p.pid: p.info["name"] for p in psutil.process_iter(["name"]) if (p.info["name"] or "").lower() == wanted and p.pid != own}
    if not matches:
        raise UsageError(f"no running LLM server or process named {name!r} (`envirollm detect` lists the servers)")
    children = set()
    for pid in matches:
        try:
            children.update(child.pid for child in psutil.Process(pid).children(recursive=True))
        except psutil.Error:
            continue
    return {pid: label for pid, label in matches.items() if pid not in children}  # a child is already in its parent's tree


def _process_name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return "?"


def _describe(targets: dict[int, str]) -> str:
    if not targets:
        return "the whole machine"
    return "the whole machine and " + ", ".join(f"{label} (pid {pid})" for pid, label in targets.items())


def _wait(sampler: Sampler, duration_s: float | None, live: bool) -> None:
    start = time.monotonic()
    shown_lines = 0
    while True:
        left = None if duration_s is None else start + duration_s - time.monotonic()
        if left is not None and left <= 0:
            break
        time.sleep(min(LIVE_REFRESH_S, left) if left is not None else LIVE_REFRESH_S)
        if live and (left is None or left > LIVE_REFRESH_S / 2):
            lines = _live_lines(sampler)
            if shown_lines:
                sys.stderr.write(f"\x1b[{shown_lines}F\x1b[J")  # redraw the table in place
            sys.stderr.write("\n".join(lines) + "\n")
            sys.stderr.flush()
            shown_lines = len(lines)


def _live_lines(sampler: Sampler) -> list[str]:
    so_far = sampler.read_window(WINDOW)
    recent = sampler.recent(LIVE_REFRESH_S)
    now = dict(recent[-1].power_w) if recent else {}
    rows = [[c.component, c.source, format_figure(now.get(c.component), "W"), format_figure(wh_to_j(c.energy_wh), "J")]
            for c in so_far.components]
    rows.append(["total", "", format_figure(recent[-1].total_power_w if recent else None, "W"),
                 format_figure(so_far.energy_j, "J")])
    last = recent[-1] if recent else None
    header = (f"{so_far.duration_s:6.1f} s   CPU {format_figure(last.cpu_percent if last else None, '%')} %   "
              f"RAM {format_figure(mib_to_gb(last.ram_used_mb) if last else None, 'GB')} GB")
    for process in last.processes if last else ():
        header += f"   pid {process.pid}: CPU {format_figure(process.cpu_percent, '%')} %, RSS {format_figure(process.rss_mb, 'MiB')} MiB"
    return [header, format_table(["component", "source", "power W", "energy J"], rows)]


def track_payload(m: Measurement, components: list[ComponentInfo], targets: dict[int, str], interval_s: float,
                  notes: tuple[str, ...]) -> dict:
    kinds = {c.name: c.kind for c in components}
    return {
        "duration_s": m.duration_s,
        "energy_j": m.energy_j,
        "energy_wh": m.energy_wh,
        "avg_power_w": m.avg_power_w,
        "peak_power_w": m.peak_power_w,
        "components": [
            {"name": c.component, "kind": kinds.get(c.component, component_kind(c.component)), "energy_j": wh_to_j(c.energy_wh),
             "energy_wh": c.energy_wh, "source": c.source, "note": c.note}
            for c in m.components
        ],
        "cpu_percent_avg": m.cpu_percent_avg,
        "cpu_percent_peak": m.cpu_percent_peak,
        "ram_used_mb_avg": m.ram_used_mb_avg,
        "ram_used_mb_peak": m.ram_used_mb_peak,
        "gpu_util_percent_avg": m.gpu_util_percent_avg,
        "gpu_util_percent_peak": m.gpu_util_percent_peak,
        "gpu_mem_used_mb_peak": m.gpu_mem_used_mb_peak,
        "gpu_temp_c_peak": m.gpu_temp_c_peak,
        "processes": [dict(dataclasses.asdict(p), label=targets.get(p.pid)) for p in m.processes],
        "interval_s": interval_s,
        "samples": m.sample_count,
        "notes": list(notes),
    }


def _summary(m: Measurement, components: list[ComponentInfo], targets: dict[int, str]) -> str:
    kinds = {c.name: c.kind for c in components}
    rows = [[c.component, kinds.get(c.component, ""), c.source, format_figure(wh_to_j(c.energy_wh), "J"),
             format_figure(c.energy_wh, "Wh"),
             format_figure(wh_to_j(c.energy_wh) / m.duration_s if c.energy_wh is not None and m.duration_s > 0 else None, "W")]
            for c in m.components]
    rows.append(["total", "", "", format_figure(m.energy_j, "J"), format_figure(m.energy_wh, "Wh"),
                 format_figure(m.avg_power_w, "W")])
    lines = [f"tracked {_describe(targets)} for {format_figure(m.duration_s, 's')} s ({m.sample_count} samples)",
             format_table(["component", "kind", "source", "energy J", "energy Wh", "avg W"], rows),
             (f"peak power {format_figure(m.peak_power_w, 'W')} W; CPU {format_figure(m.cpu_percent_avg, '%')} % avg, "
              f"{format_figure(m.cpu_percent_peak, '%')} % peak; RAM used peak {format_figure(m.ram_used_mb_peak, 'MiB')} MiB")]
    if m.gpu_util_percent_avg is not None:
        lines.append(f"GPU {format_figure(m.gpu_util_percent_avg, '%')} % avg util, memory peak {format_figure(m.gpu_mem_used_mb_peak, 'MiB')} MiB, "
                     f"temperature peak {format_figure(m.gpu_temp_c_peak, 'C')} C")
    for p in m.processes:
        lines.append(f"pid {p.pid} {targets.get(p.pid, p.process_name)}: peak RSS {format_figure(p.rss_mb_peak, 'MiB')} MiB, "
                     f"CPU {format_figure(p.cpu_percent_avg, '%')} % of a core avg, "
                     f"{format_figure(p.threads_peak, 'count')} threads, "
                     f"GPU memory peak {format_figure(p.gpu_mem_mb_peak, 'MiB')} MiB{' (exited)' if p.exited else ''}")
    estimated = [c.component for c in m.components if c.source == "estimate"]
    if estimated:
        lines.append(f"{', '.join(estimated)}: estimated, not measured (see `envirollm detect` and docs/ENERGY.md)")
    return "\n".join(lines)
