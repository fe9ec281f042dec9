"""Following Docker's event stream (server/sandbox/docker_events.py) holds threads of its own:
the event loop's small default pool stays free for every other blocking call, however many
streams (Docker hosts, servers in one process) are followed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor

import docker
from server.sandbox.backend import LABEL_MANAGED, LABEL_NAMESPACE
from server.sandbox.docker_events import container_ends

STREAMS = 3
DEADLINE = 30.0
IMAGE = "forge-sandbox-python:1"


def _run_one(namespace: str) -> None:
    """A container of `namespace` that starts, ends and is removed (a "die" event)."""
    client = docker.from_env()
    try:
        client.containers.run(
            IMAGE,
            ["true"],
            labels={LABEL_MANAGED: "true", LABEL_NAMESPACE: namespace},
            network_mode="none",
            remove=True,
        )
    finally:
        client.close()


async def _followed(
    stream: AsyncGenerator[str, None], namespace: str, own: ThreadPoolExecutor
) -> None:
    """Returns once `stream` reports a container of `namespace` ending: it is being followed."""
    loop = asyncio.get_running_loop()
    ended = asyncio.ensure_future(anext(stream))
    deadline = time.monotonic() + DEADLINE
    while not ended.done():
        if time.monotonic() > deadline:
            ended.cancel()
            raise AssertionError(f"the events of {namespace} were not followed")
        await loop.run_in_executor(own, _run_one, namespace)
        await asyncio.wait({ended}, timeout=1.0)
    await ended


async def _follow_several_then_use_the_pool() -> str:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
    own = ThreadPoolExecutor(max_workers=1)  # the test's own Docker calls
    api = docker.APIClient()
    streams: list[AsyncGenerator[str, None]] = []
    try:
        for _ in range(STREAMS):
            namespace = f"forge-events-test-{uuid.uuid4().hex[:8]}"
            streams.append(container_ends(api, namespace))
            await _followed(streams[-1], namespace, own)
        return await asyncio.wait_for(asyncio.to_thread(lambda: "served"), DEADLINE)
    finally:
        for stream in streams:
            await stream.aclose()
        api.close()
        own.shutdown()


def test_followed_event_streams_leave_the_loops_thread_pool_free(docker_engine: None) -> None:
    # A loop of its own, so that its default pool can be as small as one thread: with the
    # streams taking threads from it, the second one could not even start.
    assert asyncio.run(_follow_several_then_use_the_pool()) == "served"
