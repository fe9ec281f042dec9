"""The soak's load generator (its own process, pinned to the load core by bench/soak.py).

Arguments (JSON): target (gRPC host:port), envoy_url ("" = no Envoy: every call goes over
gRPC), pids {name: pid} of processes to measure ("postgres": the postmaster, counted with its
backends), users, streams, sse_every (every n-th stream slot chats as SSE through Envoy),
qps, open_rate (stream slots started per second), warmup and duration (s), words_min and
words_max (prompt length; the echo model's answer is the prompt plus ~40 words), tag (makes
the accounts' emails unique), refresh_every (s between token refreshes; 0: never).

Each stream slot chats in a new conversation, and opens the next as soon as one ends, so
`streams` chats stay open. Unary calls are open-loop: call n is due at start + n/qps whatever
the answers take, and its latency counts from when it was due. Figures cover the measured
window (after the warm-up); errors cover the whole run. Prints a progress line to stderr
every 10 s and one JSON object at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import grpc
import psutil

from bench.harness import percentile
from bench.loadgen.chat_clients import prompt
from bench.loadgen.common import args, emit
from bench.soak_clients import ChatOutcome, Errors, Streams, UnaryMix, User, refresh, set_up_user

# Weights of the unary mix (out of 20); the REST share goes over gRPC when there is no Envoy.
MIX = {
    "grpc GetProject": 5,
    "grpc ListProjects": 3,
    "grpc GetCurrentUser": 3,
    "grpc ListTasks": 3,
    "grpc CreateTask": 2,
    "rest GetProject": 2,
    "rest GetCurrentUser": 1,
    "rest ListTasks": 1,
}
GAP_SAMPLE_EVERY = 5
SEED_TASKS = 10
PROGRESS_EVERY = 10.0
LAG_TICK = 0.05


class Meters:
    """CPU seconds and RSS of the measured processes, and of this one."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._procs["generator"] = psutil.Process()

    def cpu(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, proc in self._procs.items():
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total = t.user + t.system
                if name == "postgres":  # the postmaster's backends, live and exited
                    total += t.children_user + t.children_system
                    for child in proc.children():
                        with contextlib.suppress(psutil.Error):
                            c = child.cpu_times()
                            total += c.user + c.system
                out[name] = float(total)
        return out

    @staticmethod
    def cores() -> list[float]:
        """Busy CPU seconds of each core, whoever used them (the machine is shared)."""
        return [
            float(t.user + t.nice + t.system + t.irq + t.softirq + t.steal)
            for t in psutil.cpu_times(percpu=True)
        ]

    def rss(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, proc in self._procs.items():
            if name != "postgres":  # its shared buffers make RSS meaningless
                with contextlib.suppress(psutil.Error):
                    out[name] = int(proc.memory_info().rss)
        return out


@dataclass
class Window:
    """Figures of the measured window."""

    start: float = float("inf")
    end: float = float("inf")
    unary: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    unary_due: int = 0
    ttft: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    started: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    gaps: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    opened: int = 0
    completed: int = 0
    tokens: int = 0
    open_samples: list[int] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)

    def holds(self, moment: float) -> bool:
        return self.start <= moment < self.end


class Soak:
    def __init__(self, p: dict[str, Any]) -> None:
        self.p = p
        self.errors = Errors()
        self.window = Window()
        self.meters = Meters(p.get("pids", {}))
        self.users: list[User] = []
        self.open_now = 0
        self.chats_total = 0
        self.unary_total = 0
        self.stopping = False
        self.rss_timeline: list[tuple[float, dict[str, int]]] = []
        self.in_flight: set[asyncio.Task[None]] = set()
        self.rng = random.Random(7)

    async def run(self) -> dict[str, Any]:
        p = self.p
        # Own connection per channel (not the process-wide subchannel pool): the streams
        # are spread over `channels` connections, unary calls have their own.
        self.channels = [
            grpc.aio.insecure_channel(p["target"], options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(p["channels"] + 1)
        ]
        self.channel = self.channels[0]
        self.http = (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            if p["envoy_url"]
            else None
        )
        try:
            return await self._run()
        finally:
            for channel in self.channels:
                await channel.close()
            if self.http is not None:
                await self.http.close()

    async def _run(self) -> dict[str, Any]:
        p = self.p
        set_up = time.perf_counter()
        semaphore = asyncio.Semaphore(8)

        async def one(n: int) -> User:
            async with semaphore:
                email = f"soak-{p['tag']}-{n}@example.com"
                return await set_up_user(self.channel, email, SEED_TASKS)

        self.users = list(await asyncio.gather(*(one(n) for n in range(p["users"]))))
        set_up = time.perf_counter() - set_up
        self.mix = UnaryMix(self.channel, self.http, p["envoy_url"])
        self.streams = [Streams(c, self.http, p["envoy_url"]) for c in self.channels[1:]]
        background = [
            asyncio.create_task(self._unary_driver()),
            asyncio.create_task(self._lag_meter()),
            asyncio.create_task(self._sampler()),
            *(asyncio.create_task(self._slot(i)) for i in range(p["streams"])),
        ]
        if p.get("refresh_every"):
            background.append(asyncio.create_task(self._refresher(p["refresh_every"])))
        began = time.perf_counter()
        await asyncio.sleep(p["warmup"])
        cpu0, rss0, cores0 = self.meters.cpu(), self.meters.rss(), self.meters.cores()
        load0 = os.getloadavg()[0]
        tokens0 = self._tokens()
        self.window.start = time.perf_counter()
        self.window.end = self.window.start + p["duration"]
        await asyncio.sleep(p["duration"])
        cpu1, rss1, cores1 = self.meters.cpu(), self.meters.rss(), self.meters.cores()
        load = {"start": load0, "end": os.getloadavg()[0]}
        cores = [b - a for a, b in zip(cores0, cores1, strict=True)]
        self.window.tokens = self._tokens() - tokens0
        seconds = time.perf_counter() - self.window.start
        open_at_end = self.open_now
        self.stopping = True
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await asyncio.gather(*self.in_flight, return_exceptions=True)
        result = self._result(
            set_up, time.perf_counter() - began, seconds, cpu0, cpu1, rss0, rss1, open_at_end
        )
        return {**result, "cores": cores, "load_average": load}

    def _tokens(self) -> int:
        return sum(streams.tokens for streams in self.streams)

    def _result(
        self,
        set_up: float,
        total: float,
        seconds: float,
        cpu0: dict[str, float],
        cpu1: dict[str, float],
        rss0: dict[str, int],
        rss1: dict[str, int],
        open_at_end: int,
    ) -> dict[str, Any]:
        w = self.window

        def pct(values: list[float]) -> dict[str, float]:
            return {
                "n": len(values),
                "p50": percentile(values, 50),
                "p99": percentile(values, 99),
                "max": max(values) if values else float("nan"),
            }

        def merged(groups: dict[str, list[float]], prefix: str = "") -> list[float]:
            return [v for name, vs in groups.items() if name.startswith(prefix) for v in vs]

        unary_ok = sum(len(v) for v in w.unary.values())
        return {
            "set_up_seconds": set_up,
            "total_seconds": total,
            "seconds": seconds,
            "users": len(self.users),
            "cpu": {name: cpu1[name] - cpu0.get(name, cpu1[name]) for name in cpu1},
            "rss_start": rss0,
            "rss_end": rss1,
            "rss_timeline": self.rss_timeline,
            "unary": {
                "due": w.unary_due,
                "ok": unary_ok,
                "qps": unary_ok / seconds,
                "all": pct(merged(w.unary)),
                "grpc": pct(merged(w.unary, "grpc")),
                "rest": pct(merged(w.unary, "rest")),
                "by_method": {name: pct(vs) for name, vs in sorted(w.unary.items())},
                "total": self.unary_total,
            },
            "chats": {
                "opened": w.opened,
                "completed": w.completed,
                "tokens": w.tokens,
                "total_opened": self.chats_total,
                "open_at_end": open_at_end,
                "open_min": min(w.open_samples, default=0),
                "open_mean": sum(w.open_samples) / max(len(w.open_samples), 1),
                "ttft": {name: pct(vs) for name, vs in w.ttft.items()},
                "started": {name: pct(vs) for name, vs in w.started.items()},
                "gaps": {name: pct(vs) for name, vs in w.gaps.items()},
            },
            "generator_lag": pct(w.lag),
            "errors": self.errors.as_dict(),
        }

    # -- unary ------------------------------------------------------------------------------
    async def _unary_driver(self) -> None:
        names = [
            name if self.http is not None else name.replace("rest ", "grpc ")
            for name, weight in MIX.items()
            for _ in range(weight)
        ]
        self.rng.shuffle(names)
        interval = 1 / self.p["qps"]
        start = time.perf_counter()
        n = 0
        while True:
            due = start + n * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self._unary(names[n % len(names)], n, due))
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)
            n += 1

    async def _unary(self, name: str, n: int, due: float) -> None:
        user = self.users[n % len(self.users)]
        self.unary_total += 1
        measured = self.window.holds(due)
        if measured:
            self.window.unary_due += 1
        if await self.mix.run(name, user, n, self.errors) and measured:
            self.window.unary[name].append(time.perf_counter() - due)

    # -- streams -----------------------------------------------------------------------------
    async def _slot(self, i: int) -> None:
        await asyncio.sleep(i / self.p["open_rate"])
        user = self.users[i % len(self.users)]
        streams = self.streams[i % len(self.streams)]
        sse = self.http is not None and i % self.p["sse_every"] == 0
        route = "sse" if sse else "grpc"
        chat = streams.sse_chat if sse else streams.grpc_chat
        sampled = i % GAP_SAMPLE_EVERY == 0 or sse
        while not self.stopping:
            try:
                conversation = await streams.conversation(user)
            except grpc.aio.AioRpcError as error:
                self.errors.grpc("grpc CreateConversation", error)
                await asyncio.sleep(1)
                continue
            words = self.rng.randint(self.p["words_min"], self.p["words_max"])
            out = ChatOutcome(gaps=[] if sampled else None)
            out.sent = time.perf_counter()
            self.open_now += 1
            self.chats_total += 1
            if self.window.holds(out.sent):
                self.window.opened += 1
            try:
                await chat(user, conversation, prompt(words), out, self.errors)
            finally:
                self.open_now -= 1
                self._settled(route, out, time.perf_counter())
            if not out.completed:
                await asyncio.sleep(1)  # already an error: no hot loop

    def _settled(self, route: str, out: ChatOutcome, ended: float) -> None:
        """Files what a chat saw (also a chat cancelled when the soak ends)."""
        w = self.window
        if w.holds(out.sent):
            if out.first_delta:
                w.ttft[route].append(out.first_delta - out.sent)
            if out.started:
                w.started[route].append(out.started - out.sent)
        if w.holds(ended) and out.completed:
            w.completed += 1
        arrival = out.first_delta
        for gap in out.gaps or ():
            arrival += gap
            if w.holds(arrival):
                w.gaps[route].append(gap)

    # -- meters ------------------------------------------------------------------------------
    async def _lag_meter(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(LAG_TICK)
            late = time.perf_counter() - before - LAG_TICK
            if self.window.holds(before):
                self.window.lag.append(late)

    async def _sampler(self) -> None:
        began = time.perf_counter()
        tick = 0
        while True:
            await asyncio.sleep(1)
            tick += 1
            now = time.perf_counter()
            if self.window.holds(now):
                self.window.open_samples.append(self.open_now)
            if tick % 10 == 0:
                rss = self.meters.rss()
                self.rss_timeline.append((round(now - began, 1), rss))
                server = rss.get("server", 0) / 2**20
                print(
                    f"soak: {now - began:5.0f} s  streams open {self.open_now}  "
                    f"chats {self.chats_total}  unary {self.unary_total}  "
                    f"errors {sum(self.errors.counts.values())}  server RSS {server:.0f} MiB",
                    file=sys.stderr,
                    flush=True,
                )

    async def _refresher(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            for user in self.users:
                try:
                    await refresh(self.channel, user)
                except grpc.aio.AioRpcError as error:
                    self.errors.grpc("grpc RefreshToken", error)


async def main() -> None:
    emit(await Soak(args()).run())


if __name__ == "__main__":
    asyncio.run(main())
