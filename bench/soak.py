"""python -m bench.soak (`make soak`): 500 concurrent chat streams plus 200 unary calls per
second for 5 minutes against make run's stack (the server, Envoy in front of it, PostgreSQL);
reports errors (must be 0), server RSS after the warm-up and at the end (flat within 10 %),
p50/p99 of unary latency, time to first token and inter-token gap, and CPU of each process.

By default it starts its own stack the way the benchmarks do (bench/infra.py: an embedded
PostgreSQL, `python -m server` pinned to core 0, Envoy with one worker pinned to core 0 as well)
and chats with the offline echo model that `make run` answers with when no provider key is
set, paced at 10 tokens/s (FORGE_ECHO_TOKEN_DELAY_MS=100) so that a stream stays open for
20-50 s. `--target host:port [--envoy http://host:port] [--server-pid N]` soaks a stack that
is already running instead (e.g. `make run`; pass its echo pace with --pace-ms).

The load generator (bench/soak_load.py) is one process pinned to core 1. Exit status 1 when
a target is not met: a call failed, the server's RSS moved by more than 10 %, fewer than
97 % of the unary calls due were answered, or fewer than 98 % of the streams were open on
average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import os
import platform
import re
import secrets
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.harness import LOAD_CORE, REPO_ROOT, SERVER_CORE, Report, Row, pin_process, pinned
from bench.infra import forge_server, infrastructure
from bench.soak_load import GAP_SAMPLE_EVERY, MIX
from gateway.launcher import EnvoyConfig, EnvoyProcess

B = "soak"
README = Path(__file__).with_name("README.md")
MARKER = re.compile(r"(<!-- soak:begin -->\n).*?(<!-- soak:end -->)", re.DOTALL)
RSS_FLAT = 0.10
REFRESH_EVERY = 600.0  # access tokens live 15 min by default


@dataclass
class Stack:
    target: str
    envoy_url: str
    pids: dict[str, int]


@asynccontextmanager
async def started_stack(pace_ms: float, settings: list[str]) -> AsyncIterator[Stack]:
    env = {"FORGE_ECHO_TOKEN_DELAY_MS": str(pace_ms)}
    env |= dict(setting.split("=", 1) for setting in settings)
    async with infrastructure() as infra, forge_server(infra, env) as server:
        config = EnvoyConfig(
            listen_port=0,
            admin_port=0,
            upstream_host="127.0.0.1",
            upstream_port=server.port,
            descriptor_path=REPO_ROOT / "gen" / "forge.binpb",
            listen_host="127.0.0.1",
        )
        async with EnvoyProcess(config, concurrency=1) as envoy:
            assert envoy.proc is not None
            await pin_process(envoy.proc.pid, SERVER_CORE)
            await envoy.wait_upstream_healthy()
            pids = {"server": server.measured.proc.pid, "envoy": envoy.proc.pid}
            postmaster = infra.workdir / "pgdata" / "postmaster.pid"
            with contextlib.suppress(OSError, ValueError, IndexError):
                pids["postgres"] = int(postmaster.read_text().splitlines()[0])
            yield Stack(f"127.0.0.1:{server.port}", envoy.base_url, pids)


def _listening_pid(port: int) -> int | None:
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return conn.pid
    return None


def attached_stack(options: argparse.Namespace) -> Stack:
    pids: dict[str, int] = {}
    server_pid = options.server_pid or _listening_pid(int(options.target.rsplit(":", 1)[1]))
    if server_pid:
        pids["server"] = server_pid
    else:
        print("soak: server pid unknown (--server-pid): no RSS or CPU figures", file=sys.stderr)
    return Stack(options.target, options.envoy or "", pids)


async def run_load(stack: Stack, options: argparse.Namespace) -> dict[str, Any]:
    params = {
        "target": stack.target,
        "envoy_url": stack.envoy_url,
        "pids": stack.pids,
        "users": options.users,
        "channels": options.channels,
        "streams": options.streams,
        "sse_every": max(1, round(1 / options.sse_share)) if options.sse_share > 0 else 10**9,
        "qps": options.qps,
        "open_rate": options.open_rate,
        "warmup": options.warmup,
        "duration": options.duration,
        "words_min": options.words_min,
        "words_max": options.words_max,
        "tag": secrets.token_hex(4),
        "refresh_every": REFRESH_EVERY if options.warmup + options.duration > REFRESH_EVERY else 0,
    }
    proc = await asyncio.create_subprocess_exec(
        *pinned(LOAD_CORE, [sys.executable, "-m", "bench.soak_load", json.dumps(params)]),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    timeout = options.warmup + options.duration + 600
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"the soak load generator failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def _ms(figures: dict[str, float], key: str) -> str:
    value = figures.get(key, math.nan)
    return "n/a" if value is None or math.isnan(value) else f"{value * 1000:.1f}"


def _pair(figures: dict[str, float] | None) -> str:
    if not figures or not figures.get("n"):
        return "n/a"
    return f"{_ms(figures, 'p50')} / {_ms(figures, 'p99')} ms"


def _mib(value: float) -> str:
    return f"{value / 2**20:.0f} MiB"


def report(
    result: dict[str, Any], options: argparse.Namespace, idle_rss: int | None
) -> tuple[Report, list[str]]:
    """The table, and the targets not met."""
    rows = Report()
    seconds = result["seconds"]
    errors: dict[str, int] = result["errors"]["counts"]
    failed = sum(errors.values())
    detail = "; ".join(
        f"{kind} x{count} ({result['errors']['first'].get(kind, '')[:80]})"
        for kind, count in sorted(errors.items(), key=lambda item: -item[1])
    )
    unary, chats = result["unary"], result["chats"]
    rows.add(
        Row(
            B,
            "failed calls (any status, any route, whole run)",
            str(failed),
            "0",
            failed == 0,
            note=detail or f"{unary['total']} unary calls, {chats['total_opened']} chats",
        )
    )
    qps_met = unary["qps"] >= 0.97 * options.qps
    rest = sum(weight for name, weight in MIX.items() if name.startswith("rest"))
    rest_share = rest / sum(MIX.values()) if unary["rest"]["n"] else 0.0
    rows.add(
        Row(
            B,
            "unary calls per second (open loop)",
            f"{unary['qps']:.1f}",
            f">= 97 % of {options.qps:g}",
            qps_met,
            note=f"{unary['ok']} answered of {unary['due']} due in {seconds:.0f} s; mix "
            "GetProject, ListProjects, GetCurrentUser, ListTasks, CreateTask; "
            f"{rest_share:.0%} REST through Envoy; plus a CreateConversation per chat",
        )
    )
    by_method = ", ".join(
        f"{name.split(' ')[0]} {name.split(' ')[1]} {_pair(f)}"
        for name, f in unary["by_method"].items()
    )
    rows.add(
        Row(
            B,
            "unary latency p50 / p99 (from when due)",
            _pair(unary["all"]),
            note=f"gRPC {_pair(unary['grpc'])}, REST {_pair(unary['rest'])}; {by_method}",
        )
    )
    streams_met = chats["open_mean"] >= 0.98 * options.streams
    rows.add(
        Row(
            B,
            "chat streams open (sampled each second)",
            f"mean {chats['open_mean']:.1f}, min {chats['open_min']}",
            f"mean >= 98 % of {options.streams}",
            streams_met,
            note=f"{chats['opened']} opened and {chats['completed']} completed in the window, "
            f"each in a new conversation; {options.sse_share:.0%} as SSE through Envoy",
        )
    )
    expected = options.streams * 1000 / options.pace_ms * seconds
    rows.add(
        Row(
            B,
            "tokens delivered",
            f"{chats['tokens'] / seconds:,.0f}/s",
            note=f"{chats['tokens'] / expected:.1%} of what {options.streams} streams at "
            f"{1000 / options.pace_ms:g} tok/s make",
        )
    )
    ttft, started, gaps = chats["ttft"], chats["started"], chats["gaps"]
    rows.add(
        Row(
            B,
            "chat time to first token p50 / p99",
            _pair(ttft.get("grpc")),
            note=f"gRPC; SSE through Envoy {_pair(ttft.get('sse'))}; echo pace "
            f"{options.pace_ms:g} ms; started event gRPC {_pair(started.get('grpc'))}",
        )
    )
    rows.add(
        Row(
            B,
            "chat inter-token gap p50 / p99",
            _pair(gaps.get("grpc")),
            note=f"gRPC, every {GAP_SAMPLE_EVERY}th stream; SSE through Envoy "
            f"{_pair(gaps.get('sse'))}; max {_ms(gaps.get('grpc', {}), 'max')} ms",
        )
    )
    rss_met = True
    start, end = result["rss_start"].get("server"), result["rss_end"].get("server")
    if start and end:
        growth = (end - start) / start
        rss_met = abs(growth) <= RSS_FLAT
        timeline = [sample[1].get("server", 0) for sample in result["rss_timeline"]]
        per_minute = ", ".join(_mib(v).removesuffix(" MiB") for v in timeline[::6])
        rows.add(
            Row(
                B,
                "server RSS after warm-up → end",
                f"{_mib(start)} → {_mib(end)} ({growth:+.1%})",
                "flat within 10 %",
                rss_met,
                note=f"peak {_mib(max([*timeline, start, end]))}; each minute of the run: "
                f"{per_minute} MiB"
                + (f"; {_mib(idle_rss)} 5 s after the load stopped" if idle_rss else ""),
            )
        )
    cpu = result["cpu"]
    if "server" in cpu:
        others = ", ".join(
            f"{name} {cpu[name] / seconds:.0%}" for name in ("envoy", "postgres") if name in cpu
        )
        cores = result["cores"]
        shared = ""
        if options.target is None and len(cores) > 1:
            ours = (cpu["server"] + cpu.get("envoy", 0)) / seconds
            shared = (
                f"; core 0 busy {cores[0] / seconds:.0%} of the time, "
                f"{max(cores[0] / seconds - ours, 0):.0%} of it other processes; core 1 busy "
                f"{cores[1] / seconds:.0%}; load average {result['load_average']['start']:.1f} → "
                f"{result['load_average']['end']:.1f}"
            )
        rows.add(
            Row(
                B,
                "server CPU (share of one core)",
                f"{cpu['server'] / seconds:.0%}",
                note=(
                    f"{others} (server and Envoy on core 0, PostgreSQL on either)" if others else ""
                )
                + shared,
            )
        )
    lag = result["generator_lag"]
    rows.add(
        Row(
            B,
            "load generator CPU (share of core 1)",
            f"{cpu['generator'] / seconds:.0%}",
            note=f"one process; event-loop lag p50 / p99 {_pair(lag)}, max {_ms(lag, 'max')} ms",
        )
    )
    return rows, [row.metric for row in rows.rows if row.met is False]


def _machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = psutil.virtual_memory().total / 2**30
    return f"{platform.machine()}, {os.cpu_count()} cores ({model}), {memory:.0f} GiB RAM"


async def main(options: argparse.Namespace) -> int:
    started = time.perf_counter()
    idle_rss: int | None = None
    if options.target:
        stack = attached_stack(options)
        result = await run_load(stack, options)
        where = f"against {options.target}"
    else:
        async with started_stack(options.pace_ms, options.server_env) as stack:
            result = await run_load(stack, options)
            await asyncio.sleep(5)  # the cancelled chats settle
            with contextlib.suppress(psutil.Error):
                idle_rss = psutil.Process(stack.pids["server"]).memory_info().rss
        where = "own stack (bench/infra.py + Envoy)"
    rows, missed = report(result, options, idle_rss)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"Run {stamp} on {_machine()}, Python {platform.python_version()}; {where}; "
        f"{options.streams} streams + {options.qps:g} unary/s, {result['users']} users, "
        f"{options.warmup:g} s warm-up + {options.duration:g} s measured "
        f"({time.perf_counter() - started:.0f} s in all). "
        + (f"**Not met**: {'; '.join(missed)}." if missed else "Every target met.")
    )
    table = rows.markdown()
    print("\n" + header + "\n\n" + table)
    if options.update_readme:
        text = README.read_text()
        block = f"{header}\n\n{table}\n"
        if MARKER.search(text):
            text = MARKER.sub(lambda m: f"{m.group(1)}{block}{m.group(2)}", text)
        else:
            text += f"\n## Soak\n\n<!-- soak:begin -->\n{block}<!-- soak:end -->\n"
        README.write_text(text)
    return 1 if missed else 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--duration", type=float, default=300, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=30, help="seconds before measuring")
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--qps", type=float, default=200, help="unary calls per second")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--sse-share", type=float, default=0.1, help="streams as SSE via Envoy")
    parser.add_argument("--pace-ms", type=float, default=100, help="echo model's token pace")
    parser.add_argument("--words-min", type=int, default=150, help="shortest prompt (words)")
    parser.add_argument("--words-max", type=int, default=450, help="longest prompt (words)")
    parser.add_argument("--channels", type=int, default=8, help="gRPC connections for streams")
    parser.add_argument("--open-rate", type=float, default=100, help="streams opened per s")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="FORGE_X=value",
        help="a setting of the started server (repeatable)",
    )
    parser.add_argument("--target", help="host:port of a running server (default: start one)")
    parser.add_argument("--envoy", help="http://host:port of its Envoy (with --target)")
    parser.add_argument("--server-pid", type=int, help="the server's pid (with --target)")
    parser.add_argument("--update-readme", action="store_true")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
