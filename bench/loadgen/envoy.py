"""The same calls straight to Forge and through Envoy, for Envoy's added latency and CPU.

Arguments (JSON): port (Forge gRPC), envoy_url (http://host:port of Envoy's listener), token,
project_id, conversations (ids, one chat each), pids {name: pid}; phases, in order:

- unary_latency: `rounds` rounds, one call in flight, each round one GetProject by every
  route in turn (gRPC direct, gRPC through Envoy, REST/JSON through Envoy), so the routes
  see the same moments of a noisy machine; latencies per route;
- unary_load: for each route, `concurrency` calls in flight for `seconds`: calls and CPU of
  each measured process;
- chat_latency: `chats` chats per route, one started every `interval` s, alternating gRPC
  direct and SSE through Envoy: time to the first delta per route.

Prints one JSON object: {"phases": [result, ...]}.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc

from bench.loadgen.chat import Client, Cpu
from bench.loadgen.chat_clients import Chat, ChatLog, ForgeGrpcChats, SseChats, prompt
from bench.loadgen.common import args, emit, no_collections
from bench.loadgen.http1 import Http1Pool

Call = Callable[[], Awaitable[bool]]


class Routes:
    def __init__(self, params: dict[str, Any]) -> None:
        token, project_id = params["token"], params["project_id"]
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.direct = grpc.aio.insecure_channel(f"127.0.0.1:{params['port']}")
        envoy_host = params["envoy_url"].removeprefix("http://")
        self.via_envoy = grpc.aio.insecure_channel(envoy_host)
        self.http = Http1Pool.of(params["envoy_url"])
        self._rest_headers = {"authorization": f"Bearer {token}"}
        self._rest_path = f"/v1/projects/{project_id}"
        self._request = projects_pb2.GetProjectRequest(project_id=project_id)
        self.calls: dict[str, Call] = {
            "grpc_direct": self._grpc(self.direct),
            "grpc_envoy": self._grpc(self.via_envoy),
            "rest_envoy": self._rest,
        }

    def _grpc(self, channel: grpc.aio.Channel) -> Call:
        stub = projects_pb2_grpc.ProjectServiceStub(channel)
        request, metadata = self._request, self.metadata

        async def call() -> bool:
            try:
                await stub.GetProject(request, metadata=metadata, timeout=30)
            except grpc.aio.AioRpcError:
                return False
            return True

        return call

    async def _rest(self) -> bool:
        async with self.http.request("GET", self._rest_path, self._rest_headers) as response:
            await response.read()
            return response.status == 200

    async def close(self) -> None:
        await self.direct.close()
        await self.via_envoy.close()
        await self.http.close()


async def unary_latency(routes: Routes, p: dict[str, Any]) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {name: [] for name in routes.calls}
    errors = dict.fromkeys(routes.calls, 0)
    for _ in range(p["rounds"]):
        for name, call in routes.calls.items():
            started = time.perf_counter()
            if await call():
                latencies[name].append(time.perf_counter() - started)
            else:
                errors[name] += 1
    return {"latencies": latencies, "errors": errors}


async def _drive(call: Call, concurrency: int, seconds: float) -> tuple[int, int]:
    calls = errors = 0
    until = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal calls, errors
        while time.perf_counter() < until:
            if await call():
                calls += 1
            else:
                errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return calls, errors


async def unary_load(routes: Routes, cpu: Cpu, p: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, call in routes.calls.items():
        c0, t0 = cpu.read(), time.perf_counter()
        calls, errors = await _drive(call, p["concurrency"], p["seconds"])
        c1, t1 = cpu.read(), time.perf_counter()
        results[name] = {
            "calls": calls,
            "errors": errors,
            "seconds": t1 - t0,
            "cpu": {key: c1[key] - c0[key] for key in c0},
        }
    return results


async def chat_latency(params: dict[str, Any], conversations: list[str]) -> dict[str, Any]:
    token = params["token"]
    routes: dict[str, Client] = {
        "grpc_direct": ForgeGrpcChats(params["port"], (("authorization", f"Bearer {token}"),), 1),
        "sse_envoy": SseChats(
            params["envoy_url"],
            "/v1/conversations/{conversation_id}:chat",
            {"authorization": f"Bearer {token}"},
        ),
    }
    content = prompt(params["phase"]["words"])
    chats: dict[str, list[Chat]] = {name: [] for name in routes}
    ids = iter(conversations)
    counter = itertools.count()
    warmup = params["phase"].get("warmup", 0)
    try:
        # A chat every `interval` s, the routes taking turns: a handful in flight at once.
        # The first `warmup` per route open the connections the rest reuse (the gRPC
        # route's channel is one warm HTTP/2 connection; SSE takes one per chat in flight).
        for measured, count in ((False, warmup), (True, params["phase"]["chats"])):
            tasks = []
            for _ in range(count):
                for name, client in routes.items():
                    chat = Chat()
                    if measured:
                        chats[name].append(chat)
                    chat.sent = time.perf_counter()
                    tasks.append(
                        asyncio.create_task(
                            client.chat(next(counter), next(ids), content, ChatLog(), chat)
                        )
                    )
                    await asyncio.sleep(params["phase"]["interval"])
            await asyncio.gather(*tasks)
    finally:
        for client in routes.values():
            await client.close()
    return {
        "first_delta": {
            name: [c.first_delta - c.sent for c in done if c.first_delta]
            for name, done in chats.items()
        },
        "started": {
            name: [c.started - c.sent for c in done if c.started] for name, done in chats.items()
        },
        "errors": {
            name: next((c.error for c in done if c.error), "") for name, done in chats.items()
        },
    }


async def main() -> None:
    params = args()
    cpu = Cpu(params.get("pids", {}))
    routes = Routes(params)
    results: list[dict[str, Any]] = []
    try:
        for phase in params["phases"]:
            kind = phase["kind"]
            with no_collections():
                if kind == "unary_latency":
                    result = await unary_latency(routes, phase)
                elif kind == "unary_load":
                    result = await unary_load(routes, cpu, phase)
                else:
                    result = await chat_latency({**params, "phase": phase}, params["conversations"])
            results.append({"kind": kind, **result})
    finally:
        await routes.close()
    emit({"phases": results})


if __name__ == "__main__":
    asyncio.run(main())
