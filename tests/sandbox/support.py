"""Helpers for sandbox tests: people and projects in the database, and running executions."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import docker
from server.core.context import Caller
from server.core.pagination import Page
from server.db.models import Project, ProjectMember, User
from server.sandbox.backend import LABEL_MANAGED, LABEL_NAMESPACE, Stream
from server.sandbox.executions import Execution
from server.sandbox.launcher import ExecParams
from server.sandbox.parts import SandboxParts
from server.sandbox.views import ExecEvent, ExecExited, ExecOutput, ExecStarted

# Every namespace a test run uses starts with this, so clean-up finds them all.
TEST_PREFIX = "sbxtest-"
RUN_PREFIX = f"{TEST_PREFIX}{secrets.token_hex(3)}"


def namespace(purpose: str) -> str:
    return f"{RUN_PREFIX}-{purpose}"


async def new_user(sessions: async_sessionmaker[AsyncSession], name: str) -> Caller:
    async with sessions() as db:
        user = User(
            email=f"{name}-{secrets.token_hex(4)}@sandbox.test",
            password_hash="!",  # nobody signs in as this user
            display_name=name,
        )
        db.add(user)
        await db.commit()
        return Caller(user_id=user.id, roles=frozenset({"user"}))


@dataclass(frozen=True)
class Team:
    """A project with a member of each role, and someone who is not a member."""

    project_id: str
    owner: Caller
    editor: Caller
    viewer: Caller
    stranger: Caller


async def new_team(sessions: async_sessionmaker[AsyncSession]) -> Team:
    owner = await new_user(sessions, "owner")
    editor = await new_user(sessions, "editor")
    viewer = await new_user(sessions, "viewer")
    stranger = await new_user(sessions, "stranger")
    async with sessions() as db:
        project = Project(name=f"sandbox test {secrets.token_hex(3)}")
        db.add(project)
        await db.flush()
        for caller, role in ((owner, "owner"), (editor, "editor"), (viewer, "viewer")):
            db.add(ProjectMember(project_id=project.id, user_id=caller.user_id, role=role))
        await db.commit()
        return Team(str(project.id), owner, editor, viewer, stranger)


@dataclass
class Ran:
    """Everything an execution streamed, with arrival times (seconds after the start)."""

    events: list[ExecEvent] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)

    @property
    def started(self) -> ExecStarted:
        first = self.events[0]
        assert isinstance(first, ExecStarted), first
        return first

    @property
    def exit(self) -> ExecExited:
        last = self.events[-1]
        assert isinstance(last, ExecExited), last
        return last

    def output(self, stream: Stream) -> bytes:
        return b"".join(
            e.data for e in self.events if isinstance(e, ExecOutput) and e.stream is stream
        )

    @property
    def stdout(self) -> bytes:
        return self.output(Stream.STDOUT)

    @property
    def stderr(self) -> bytes:
        return self.output(Stream.STDERR)


def params(
    argv: list[str] | None = None,
    script: str = "",
    *,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    idle_timeout: float | None = None,
    working_dir: str = "",
) -> ExecParams:
    return ExecParams(
        argv=argv or [],
        shell=script,
        stdin=stdin,
        env=dict(env or {}),
        timeout=timedelta(seconds=timeout) if timeout else None,
        idle_timeout=timedelta(seconds=idle_timeout) if idle_timeout else None,
        working_dir=working_dir,
    )


def page_of(size: int, after: Sequence[str] | None = None) -> Page:
    """A page of `size` items after the key `after` (what a page token would carry)."""
    return Page(size=size, after=tuple(after) if after else None, kind="test", filters_digest="")


async def collect(execution: Execution) -> Ran:
    ran = Ran()
    started = time.monotonic()
    async for event in execution.events():
        ran.events.append(event)
        ran.arrivals.append(time.monotonic() - started)
    return ran


async def run(
    sandboxes: SandboxParts,
    caller: Caller,
    sandbox_id: str,
    exec_params: ExecParams,
    deadline: float | None = None,
) -> Ran:
    execution = await sandboxes.executions.start_exec(caller, sandbox_id, exec_params, deadline)
    return await collect(execution)


async def shell(sandboxes: SandboxParts, caller: Caller, sandbox_id: str, command: str) -> Ran:
    return await run(sandboxes, caller, sandbox_id, params(script=command, timeout=20))


async def output_until(
    execution: Execution, stream_wanted: Stream, wanted: bytes
) -> tuple[AsyncIterator[ExecEvent], list[ExecEvent]]:
    """Reads events until `wanted` has appeared on one stream (case-insensitively); answers
    the (still open) event stream and what was read."""
    stream = execution.events()
    seen: list[ExecEvent] = []
    text = b""
    async for event in stream:
        seen.append(event)
        if isinstance(event, ExecOutput) and event.stream is stream_wanted:
            text += event.data
            if wanted.lower() in text.lower():
                return stream, seen
    raise AssertionError(f"{wanted!r} never appeared: {seen!r}")


async def stderr_until(
    execution: Execution, wanted: bytes
) -> tuple[AsyncIterator[ExecEvent], list[ExecEvent]]:
    return await output_until(execution, Stream.STDERR, wanted)


async def stdout_until(
    execution: Execution, wanted: bytes
) -> tuple[AsyncIterator[ExecEvent], list[ExecEvent]]:
    return await output_until(execution, Stream.STDOUT, wanted)


def managed_containers(namespace_value: str) -> list[dict[str, object]]:
    client = docker.from_env()
    try:
        return list(
            client.api.containers(
                all=True,
                filters={
                    "label": [f"{LABEL_MANAGED}=true", f"{LABEL_NAMESPACE}={namespace_value}"]
                },
            )
        )
    finally:
        client.close()


async def container_ids(namespace_value: str) -> set[str]:
    rows = await asyncio.to_thread(managed_containers, namespace_value)
    return {str(row["Id"]) for row in rows}


def remove_test_containers(older_than: timedelta | None = None) -> int:
    """Removes every container of this test run, or (`older_than`) of any test run that
    started that long ago (left behind by a run that was killed)."""
    client = docker.from_env()
    removed = 0
    now = time.time()
    try:
        for row in client.api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=true"}):
            labels = row.get("Labels") or {}
            space = str(labels.get(LABEL_NAMESPACE, ""))
            if older_than is None:
                doomed = space.startswith(RUN_PREFIX)
            else:
                age = now - float(row.get("Created") or now)
                doomed = space.startswith(TEST_PREFIX) and age > older_than.total_seconds()
            if doomed:
                client.api.remove_container(row["Id"], v=True, force=True)
                removed += 1
    finally:
        client.close()
    return removed
