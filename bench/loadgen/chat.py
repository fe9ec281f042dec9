"""Chat streams against Forge (gRPC direct, or REST/SSE through Envoy) and the SSE peer.

Arguments (JSON): targets {name: target}, a target being {"transport": "grpc" | "sse",
"port": Forge's gRPC port (set-up: an account, a project and a conversation per chat; and
the grpc transport), "base_url" and "path" (sse), "channels" (gRPC connections), "pid",
"bare" (a gRPC floor server: no accounts or conversations), "model" (what Forge's chats
ask for; default: the conversation's own)};
pids {name: pid} of further processes whose CPU each window reads (Envoy); phases, run in
order, each naming its `target`:

- ttft: `chats` short chats started `interval` s apart, `targets` taking turns (the targets
  see the same moments of a noisy machine): time to the started event and to the first
  delta, per target;
- relay: `streams` long chats at once; once every stream has its first delta, a `window`
  of s in which no chat opens or ends: CPU of each process and tokens received (a window
  with fewer tokens than the pace makes is taken again, `attempts` windows at most; then
  the streams are cancelled);
- fixed: `chats` short chats, `concurrency` at a time (answers cut at `max_output_tokens`
  if given): CPU and tokens of the whole phase (the per-chat cost is what remains after the
  per-token cost is taken out);
- unary: `calls` GetProject calls on the target's project, `concurrency` at a time: CPU of
  the whole phase (what a chat's fixed cost is compared with, on the same server);
- levels: streams opened at `open_rate`/s up to each of `levels`; at each, once every stream
  has its first delta (at most `start_timeout` s at the first level, `next_start_timeout` s
  at the others: opens refused SERVER_BUSY come back after their RetryInfo) and `settle` s
  more, a `window` of s: CPU, tokens and the gaps between deltas of every 20th stream (a window with
  fewer tokens than the pace makes is taken again, `attempts` windows at most).

Prints one JSON object: {"phases": [result, ...]} in the order given.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator
from typing import Any, Protocol

import psutil

from bench.loadgen.chat_clients import (
    Chat,
    ChatLog,
    ForgeGrpcChats,
    SseChats,
    answer_tokens,
    describe_errors,
    forge_world,
    prompt,
)
from bench.loadgen.common import LoopLag, args, emit, no_collections

GAP_SAMPLE_EVERY = 20


class Client(Protocol):
    async def chat(
        self,
        index: int,
        conversation_id: str,
        content: str,
        log: ChatLog,
        chat: Chat,
        max_output_tokens: int = 0,
    ) -> None: ...

    async def close(self) -> None: ...


class Cpu:
    """CPU seconds (user + system, all threads) of the measured processes and of this one."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._procs["client"] = psutil.Process()

    def read(self) -> dict[str, float]:
        return {
            name: float(t.user + t.system)
            for name, t in ((n, p.cpu_times()) for n, p in self._procs.items())
        }

    async def quiet(self, share: float = 0.1, every: float = 0.25, at_most: float = 10.0) -> None:
        """Waits (at most `at_most` s) until the measured processes spend under `share` of a
        core each: a server still busy with the set-up's calls would slow the first chats
        timed."""
        deadline = time.perf_counter() + at_most
        before = self.read()
        while time.perf_counter() < deadline:
            await asyncio.sleep(every)
            now = self.read()
            if all(now[n] - before[n] < share * every for n in now if n != "client"):
                return
            before = now

    def rss(self) -> dict[str, int]:
        return {name: int(p.memory_info().rss) for name, p in self._procs.items()}


class Window:
    def __init__(self, cpu: Cpu, log: ChatLog) -> None:
        self._cpu, self._log = cpu, log
        self.t0 = time.perf_counter()
        self._c0 = cpu.read()
        self._tokens0, self._deltas0 = log.tokens, log.deltas

    def close(self) -> dict[str, Any]:
        t1 = time.perf_counter()
        c1 = self._cpu.read()
        return {
            "t0": self.t0,
            "t1": t1,
            "seconds": t1 - self.t0,
            "cpu": {name: c1[name] - c0 for name, c0 in self._c0.items()},
            "tokens": self._log.tokens - self._tokens0,
            "deltas": self._log.deltas - self._deltas0,
        }


def _ttfts(chats: list[Chat]) -> dict[str, list[float]]:
    return {
        "first_delta": [c.first_delta - c.sent for c in chats if c.first_delta],
        "started": [c.started - c.sent for c in chats if c.started],
        # The try that was let in, alone (SERVER_BUSY refusals before it not counted).
        "started_admitted": [c.started - (c.tried or c.sent) for c in chats if c.started],
    }


class Target:
    def __init__(self, client: Client, conversations: Iterator[str], project_id: str) -> None:
        self.client = client
        self.conversations = conversations
        self.project_id = project_id
        self.index = itertools.count()

    def start(
        self, log: ChatLog, content: str, sample: bool = False, max_output_tokens: int = 0
    ) -> asyncio.Task[None]:
        chat = Chat(arrivals=[] if sample else None)
        log.chats.append(chat)
        chat.sent = time.perf_counter()
        return asyncio.create_task(
            self.client.chat(
                next(self.index), next(self.conversations), content, log, chat, max_output_tokens
            )
        )


class Runner:
    def __init__(self, targets: dict[str, Target], cpu: Cpu) -> None:
        self.targets = targets
        self.cpu = cpu

    async def ttft(self, p: dict[str, Any]) -> dict[str, Any]:
        names: list[str] = p["targets"]
        logs = {name: ChatLog() for name in names}
        content = prompt(p["words"])
        tasks = []
        for _ in range(p["chats"]):
            for name in names:
                tasks.append(self.targets[name].start(logs[name], content))
                await asyncio.sleep(p["interval"])
        await asyncio.gather(*tasks)
        return {
            name: {**_ttfts(log.chats), **describe_errors(log.chats)} for name, log in logs.items()
        }

    async def unary(self, p: dict[str, Any]) -> dict[str, Any]:
        target = self.targets[p["target"]]
        client = target.client
        assert isinstance(client, ForgeGrpcChats)
        semaphore = asyncio.Semaphore(p["concurrency"])

        async def one() -> None:
            async with semaphore:
                await client.get_project(target.project_id)

        window = Window(self.cpu, ChatLog())
        await asyncio.gather(*(one() for _ in range(p["calls"])))
        return {"window": window.close(), "calls": p["calls"]}

    async def relay(self, p: dict[str, Any]) -> dict[str, Any]:
        log = ChatLog()
        attempts = p.get("attempts", 1)
        # Long enough for every window: streams are cancelled once one is measured.
        words = int((2 + p["warmup"] + attempts * p["window"]) * p["tokens_per_second"]) + 20
        content = prompt(words)
        target = self.targets[p["target"]]
        tasks = [target.start(log, content) for _ in range(p["streams"])]
        deadline = time.perf_counter() + 60
        while not all(c.first_delta or c.ended for c in log.chats):
            if time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(p["warmup"])
        # A window in which the processes were starved of CPU (fewer tokens than the pace
        # makes) is measured again, `attempts` windows at most.
        disturbed = 0
        while True:
            window = Window(self.cpu, log)
            await asyncio.sleep(p["window"])
            measured = window.close()
            expected = p["streams"] * p["tokens_per_second"] * measured["seconds"]
            if measured["tokens"] >= 0.95 * expected or disturbed + 1 >= attempts:
                break
            disturbed += 1
        rss = self.cpu.rss()
        ended_early = sum(1 for c in log.chats if c.ended and c.ended < measured["t1"])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return {
            "target": p["target"],
            "window": measured,
            "expected_tokens": expected,
            "disturbed_windows": disturbed,
            "rss": rss,
            "ended_in_window": ended_early,
            **_ttfts(log.chats),
            **describe_errors(log.chats),
        }

    async def fixed(self, p: dict[str, Any]) -> dict[str, Any]:
        log = ChatLog()
        content = prompt(p["words"])
        semaphore = asyncio.Semaphore(p["concurrency"])
        target = self.targets[p["target"]]

        async def one() -> None:
            async with semaphore:
                await target.start(log, content, max_output_tokens=p.get("max_output_tokens", 0))

        window = Window(self.cpu, log)
        await asyncio.gather(*(one() for _ in range(p["chats"])))
        # Settling (the last transaction) runs after the stream ended: let it finish.
        await asyncio.sleep(p.get("tail", 0.5))
        return {
            "window": window.close(),
            "chats": p["chats"],
            **_ttfts(log.chats),
            **describe_errors(log.chats),
        }

    async def levels(self, p: dict[str, Any]) -> dict[str, Any]:
        log = ChatLog()
        rate, settle, seconds = p["open_rate"], p["settle"], p["window"]
        levels: list[int] = p["levels"]
        # Every stream must outlive the last window.
        total = (
            levels[-1] / rate
            + p.get("start_timeout", 0)
            + (len(levels) - 1) * p.get("next_start_timeout", 0)
            + len(levels) * (settle + seconds * p["attempts"])
            + 10
        )
        words = int(total * p["tokens_per_second"])
        content = prompt(words)
        target = self.targets[p["target"]]
        tasks: list[asyncio.Task[None]] = []
        results: list[dict[str, Any]] = []
        # While the first level opens: the opens of a burst are timed by this loop too.
        first_level_lag = LoopLag()
        for level in levels:
            ramp_started = time.perf_counter()
            before = len(tasks)
            while len(tasks) < level:
                delay = ramp_started + (len(tasks) - before) / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sample = len(tasks) % GAP_SAMPLE_EVERY == 0
                tasks.append(target.start(log, content, sample=sample))
            ramp = time.perf_counter() - ramp_started
            # Measured once every stream of the level streams (or its start timeout passed).
            start_deadline = time.perf_counter() + p.get(
                "start_timeout" if level == levels[0] else "next_start_timeout", 0
            )
            while not all(c.first_delta or c.ended for c in log.chats):
                if time.perf_counter() > start_deadline:
                    break
                await asyncio.sleep(0.1)
            started_in = time.perf_counter() - ramp_started
            if not results:
                first_level_lag.stop()
            await asyncio.sleep(settle)
            # This machine is shared: a window in which the processes were starved of CPU
            # (fewer tokens than the pace makes) is measured again, up to `attempts` times.
            disturbed = 0
            while True:
                window = Window(self.cpu, log)
                await asyncio.sleep(seconds)
                measured = window.close()
                expected = level * p["tokens_per_second"] * measured["seconds"]
                if measured["tokens"] >= 0.95 * expected or disturbed + 1 >= p["attempts"]:
                    break
                disturbed += 1
            live = sum(1 for c in log.chats if c.first_delta and not c.ended)
            results.append(
                {
                    "level": level,
                    "live": live,
                    "ramp_seconds": ramp,
                    "started_seconds": started_in,
                    "window": measured,
                    "disturbed_windows": disturbed,
                    "rss": self.cpu.rss(),
                    "gaps": _gaps(log.chats, measured["t0"], measured["t1"]),
                    **describe_errors(log.chats),
                }
            )
        starts = _ttfts(log.chats)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        busy = sum(c.busy_retries for c in log.chats)
        return {
            "levels": results,
            "answer_tokens": answer_tokens(words),
            "busy_retries": busy,
            "chats_retried": sum(1 for c in log.chats if c.busy_retries),
            "client_lag_first_level": first_level_lag.lags,
            **starts,
        }


def _gaps(chats: list[Chat], t0: float, t1: float) -> list[float]:
    gaps: list[float] = []
    for chat in chats:
        arrivals = chat.arrivals
        if not arrivals:
            continue
        gaps.extend(b - a for a, b in itertools.pairwise(arrivals) if t0 <= b <= t1)
    return gaps


def _chats_needed(phases: list[dict[str, Any]], name: str) -> int:
    needed = 0
    for p in phases:
        if p.get("target") == name or name in p.get("targets", ()):
            needed += p.get("chats", 0) + p.get("streams", 0) + max(p.get("levels", [0]))
    return needed


async def main() -> None:
    params = args()
    phases: list[dict[str, Any]] = params["phases"]
    targets: dict[str, Target] = {}
    pids: dict[str, int] = dict(params.get("pids", {}))
    try:
        for name, spec in params["targets"].items():
            pids[name] = spec["pid"]
            client: Client
            metadata: tuple[tuple[str, str], ...] = ()
            if "port" in spec and not spec.get("bare"):  # Forge
                world = await forge_world(
                    spec["port"], _chats_needed(phases, name), f"bench-{name}@example.com"
                )
                conversations: Iterator[str] = iter(world.conversations)
                project_id = world.project_id
                headers = {"authorization": f"Bearer {world.access_token}"}
                metadata = tuple(world.metadata)
            else:  # a peer or floor: no accounts, no conversations
                conversations = itertools.repeat("")
                project_id = ""
                headers = {}
            if spec["transport"] == "grpc":
                client = ForgeGrpcChats(
                    spec["port"], metadata, spec.get("channels", 1), spec.get("model", "")
                )
            else:
                client = SseChats(spec["base_url"], spec["path"], headers)
            targets[name] = Target(client, conversations, project_id)
        runner = Runner(targets, Cpu(pids))
        await runner.cpu.quiet()
        results = []
        for phase in phases:
            with no_collections():
                result = await getattr(runner, phase["kind"])(phase)
            results.append({"kind": phase["kind"], **result})
    finally:
        for target in targets.values():
            await target.client.close()
    emit({"phases": results})


if __name__ == "__main__":
    asyncio.run(main())
