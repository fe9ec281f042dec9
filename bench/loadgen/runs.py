"""Agent runs against Forge: `runs` echo runs at once, each following the echo script (write a
file, run it with a bash tool call, save it as an artifact, finish), watched to the end.

Arguments (JSON): start_port (the server the runs start on), watch_port (the server their
WatchRun streams come from: the same one, or a second process on the same database),
runs, sandboxes (the runs share this many sandboxes, created first), pids {name: pid}.

Prints one JSON object: runs, failed, seconds (first StartRun to last terminal event),
steps (model turns over all runs), events, cpu {name: seconds over that time}, and the
append→delivery delays in seconds (watcher receive time - the event's stored create_time,
the database's clock on the same machine).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import grpc
import psutil
from forge.agents.v1 import agents_pb2, agents_pb2_grpc
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc

from bench.loadgen.common import args, emit

Metadata = tuple[tuple[str, str], ...]
CODER = "coder"
PASSWORD = "Bench-Passw0rd"


def goal(index: int) -> str:
    return (
        f"Write a program that prints a greeting for run {index}.\n\n"
        f"```python\n# file: run_{index}.py\nprint('hello from run {index}')\n```\n"
    )


async def sign_up(channel: grpc.aio.Channel) -> Metadata:
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    email = f"runs-{uuid.uuid4().hex[:10]}@bench.example"
    signed_up = await auth.Register(
        auth_pb2.RegisterRequest(email=email, password=PASSWORD, display_name="Bench")
    )
    return (("authorization", f"Bearer {signed_up.tokens.access_token}"),)


async def watch(
    stub: agents_pb2_grpc.AgentServiceAsyncStub,
    metadata: Metadata,
    run_id: str,
    delays: list[float],
) -> tuple[int, int, bool]:
    """(events, steps, succeeded) of one run, watched from its first event to its last."""
    events = steps = 0
    succeeded = False
    async for event in stub.WatchRun(
        agents_pb2.WatchRunRequest(run_id=run_id), metadata=metadata, timeout=600
    ):
        received = time.time()
        events += 1
        stored = event.create_time.seconds + event.create_time.nanos / 1e9
        delays.append(received - stored)
        if event.HasField("status") and event.status.step:
            steps += 1
        if event.HasField("completed"):
            succeeded = event.completed.status == agents_pb2.RUN_STATUS_SUCCEEDED
        if event.HasField("completed") or event.HasField("error"):
            break
    return events, steps, succeeded


async def main() -> None:
    options = args()
    runs = int(options["runs"])
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{options['start_port']}") as start_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{options['watch_port']}") as watch_channel,
    ):
        metadata = await sign_up(start_channel)
        project = await projects_pb2_grpc.ProjectServiceStub(start_channel).CreateProject(
            projects_pb2.CreateProjectRequest(project=projects_pb2.Project(name="bench runs")),
            metadata=metadata,
        )
        sandboxes = sandbox_pb2_grpc.SandboxServiceStub(start_channel)
        shared = [
            await sandboxes.CreateSandbox(
                sandbox_pb2.CreateSandboxRequest(
                    project_id=project.id, sandbox=sandbox_pb2.Sandbox(runtime="python")
                ),
                metadata=metadata,
                timeout=120,
            )
            for _ in range(int(options["sandboxes"]))
        ]
        starter = agents_pb2_grpc.AgentServiceStub(start_channel)
        watcher = agents_pb2_grpc.AgentServiceStub(watch_channel)
        procs = {name: psutil.Process(pid) for name, pid in options["pids"].items()}

        def cpu() -> dict[str, float]:
            return {n: float(p.cpu_times().user + p.cpu_times().system) for n, p in procs.items()}

        delays: list[float] = []
        cpu_before = cpu()
        began = time.perf_counter()

        async def one(index: int) -> tuple[int, int, bool]:
            run = await starter.StartRun(
                agents_pb2.StartRunRequest(
                    project_id=project.id,
                    agent_id=CODER,
                    goal=goal(index),
                    model="echo",
                    sandbox_id=shared[index % len(shared)].id,
                ),
                metadata=metadata,
                timeout=60,
            )
            return await watch(watcher, metadata, run.id, delays)

        results = await asyncio.gather(*(one(i) for i in range(runs)))
        seconds = time.perf_counter() - began
        cpu_after = cpu()
        for sandbox in shared:
            await sandboxes.DeleteSandbox(
                sandbox_pb2.DeleteSandboxRequest(sandbox_id=sandbox.id), metadata=metadata
            )
    result: dict[str, Any] = {
        "runs": runs,
        "failed": sum(1 for _, _, ok in results if not ok),
        "seconds": seconds,
        "events": sum(events for events, _, _ in results),
        "steps": sum(steps for _, steps, _ in results),
        "cpu": {name: cpu_after[name] - cpu_before[name] for name in cpu_after},
        "delays": delays,
    }
    emit(result)


if __name__ == "__main__":
    asyncio.run(main())
