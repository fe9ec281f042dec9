"""Watching runs (RunWatcher, RunReader) against real PostgreSQL: replay then live, several
watchers at once and from a seq, watchers on another listening connection ("another
process"), the end of the stream, and the access rule.

Uses the database and fixtures of test_log.py (no server and no worker on it)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
import pytest
from forge.agents.v1 import agents_pb2, agents_pb2_grpc
from google.protobuf import json_format
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.agents.runs import convert
from server.agents.runs.convert import EventCodec
from server.agents.runs.events import (
    Completed,
    Delta,
    Failed,
    RunStatus,
    StatusChanged,
    StoredEvent,
    ToolAnswered,
    ToolCalled,
    TurnUsage,
)
from server.agents.runs.log import EventLog
from server.agents.runs.notify import RunNotifications, listen_dsn
from server.agents.runs.watch import RUN_NOT_FOUND, RunReader, RunWatcher
from server.app import ForgeServer
from server.core.context import Caller
from server.core.errors import InvalidArgument, NotFound
from server.core.pagination import PageTokens
from server.db.engine import dispose, make_engine, make_session_factory
from tests.agents.support import Team as ApiTeam
from tests.agents.support import new_team as new_api_team
from tests.runs import test_log
from tests.runs.test_log import LEASE, Team, new_run
from tests.support.accounts import Account
from tests.support.rpc import error_info, field_violations

# The database and fixtures of test_log.py.
runs_engine = test_log.runs_engine
runs_sessions = test_log.runs_sessions
notifications = test_log.notifications
event_log = test_log.event_log
team = test_log.team

DEADLINE = 10.0


@pytest.fixture(scope="module")
async def far_notifications(runs_engine: AsyncEngine) -> AsyncIterator[RunNotifications]:
    """A second listening connection: what another server process holds."""
    listener = RunNotifications(listen_dsn(runs_engine))
    await listener.start()
    yield listener
    await listener.stop()


@pytest.fixture
def watcher(
    runs_sessions: async_sessionmaker[AsyncSession],
    event_log: EventLog,
    notifications: RunNotifications,
) -> RunWatcher:
    # Small pages, so replays cross page boundaries.
    return RunWatcher(runs_sessions, event_log, notifications, page_size=4)


class Watch:
    """One watcher running in the background, collecting what it receives."""

    def __init__(self, watcher: RunWatcher, caller: Caller, run_id: uuid.UUID, after: int) -> None:
        self.events: list[StoredEvent] = []
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._run(watcher, caller, str(run_id), after))

    async def _run(self, watcher: RunWatcher, caller: Caller, run_id: str, after: int) -> None:
        async for stored in watcher.watch(caller, run_id, after):
            self.events.append(stored)
            self.changed.set()

    @property
    def seqs(self) -> list[int]:
        return [stored.seq for stored in self.events]

    async def until(self, count: int) -> None:
        async def reached() -> None:
            while len(self.events) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(reached(), DEADLINE)

    async def ended(self) -> list[StoredEvent]:
        await asyncio.wait_for(self.task, DEADLINE)
        return self.events


def turn(step: int) -> list[StatusChanged | Delta | ToolCalled | TurnUsage | ToolAnswered]:
    call = f"call-{step}"
    return [
        StatusChanged(RunStatus.RUNNING, step=step),
        Delta(f"step {step}, "),
        Delta("calling bash"),
        ToolCalled(call, "bash", '{"command": "ls"}'),
        TurnUsage(10, 5),
        ToolAnswered(call, "bash", "main.py"),
    ]


async def test_watchers_see_the_same_events_without_gaps(
    runs_sessions: async_sessionmaker[AsyncSession],
    runs_engine: AsyncEngine,
    event_log: EventLog,
    notifications: RunNotifications,
    far_notifications: RunNotifications,
    watcher: RunWatcher,
    team: Team,
) -> None:
    run_id = await new_run(runs_sessions, team)
    await event_log.append(run_id, LEASE, turn(1))
    await event_log.append(run_id, LEASE, turn(2)[:4])  # 10 stored events
    viewer = Caller(team.viewer_id)
    far = RunWatcher(runs_sessions, event_log, far_notifications)

    first, second = Watch(watcher, viewer, run_id, 0), Watch(watcher, viewer, run_id, 0)
    from_seventh = Watch(watcher, Caller(team.editor_id), run_id, 7)
    elsewhere = Watch(far, viewer, run_id, 0)
    for watch in (first, second, elsewhere):
        await watch.until(10)
    await from_seventh.until(3)
    assert first.seqs == list(range(1, 11))  # the replay, before anything live

    # Live: batches from the owner while they watch, one at a time and in bursts.
    await event_log.append(run_id, LEASE, turn(2)[4:])
    await first.until(12)
    await asyncio.gather(
        event_log.append(run_id, LEASE, turn(3)),
        event_log.append(run_id, LEASE, [Delta("a burst")]),
    )
    for step in range(4, 7):
        await event_log.append(run_id, LEASE, turn(step))
        await asyncio.sleep(0.01)
    await event_log.append(run_id, LEASE, [Completed(RunStatus.SUCCEEDED, "done", 60, 30)])

    stored = await event_log.read(run_id, 0)
    total = len(stored)
    assert total == 12 + 6 + 1 + 18 + 1
    expected = [(e.seq, e.payload) for e in stored]
    for watch in (first, second, elsewhere):
        events = await watch.ended()
        assert [(e.seq, e.payload) for e in events] == expected
    assert [(e.seq, e.payload) for e in await from_seventh.ended()] == expected[7:]
    assert isinstance(first.events[-1].event, Completed)
    assert first.events[0].create_time <= first.events[-1].create_time

    # Again once it has ended: the whole run, then the end; from its last seq, nothing.
    again = Watch(watcher, viewer, run_id, 0)
    assert [(e.seq, e.payload) for e in await again.ended()] == expected
    assert await Watch(watcher, viewer, run_id, total).ended() == []
    assert [e.seq for e in await Watch(far, viewer, run_id, total - 1).ended()] == [total]


async def test_a_failed_run_ends_the_stream(
    runs_sessions: async_sessionmaker[AsyncSession],
    event_log: EventLog,
    watcher: RunWatcher,
    team: Team,
) -> None:
    run_id = await new_run(runs_sessions, team)
    watch = Watch(watcher, Caller(team.viewer_id), run_id, 0)
    await asyncio.sleep(0.1)
    assert not watch.task.done()  # nothing yet: it waits
    await event_log.append(run_id, LEASE, [StatusChanged(RunStatus.RUNNING, step=1)])
    await watch.until(1)
    failure = Failed(8, "RUN_STEP_BUDGET_EXHAUSTED", "out of steps", {})
    await event_log.append(run_id, LEASE, [failure])
    assert [e.event for e in await watch.ended()] == [
        StatusChanged(RunStatus.RUNNING, step=1),
        failure,
    ]


async def test_a_watcher_leaving_does_not_disturb_the_others(
    runs_sessions: async_sessionmaker[AsyncSession],
    event_log: EventLog,
    notifications: RunNotifications,
    watcher: RunWatcher,
    team: Team,
) -> None:
    run_id = await new_run(runs_sessions, team)
    viewer = Caller(team.viewer_id)
    staying, leaving = Watch(watcher, viewer, run_id, 0), Watch(watcher, viewer, run_id, 0)
    await event_log.append(run_id, LEASE, [Delta("one")])
    await leaving.until(1)
    leaving.task.cancel()
    await asyncio.gather(leaving.task, return_exceptions=True)
    # It resumes where it left off.
    resumed = Watch(watcher, viewer, run_id, leaving.seqs[-1])
    await event_log.append(run_id, LEASE, [Delta("two"), Completed(RunStatus.CANCELLED, "", 0, 0)])
    assert [e.seq for e in await staying.ended()] == [1, 2, 3]
    assert [e.seq for e in await resumed.ended()] == [2, 3]


async def test_watch_access_and_input(
    runs_sessions: async_sessionmaker[AsyncSession], watcher: RunWatcher, team: Team
) -> None:
    run_id = await new_run(runs_sessions, team)

    async def first_event(caller: Caller, run: str, after: int = 0) -> None:
        events = await watcher.open(caller, run, after)
        await events.aclose()

    with pytest.raises(NotFound) as stranger:
        await first_event(Caller(team.stranger_id), str(run_id))
    assert stranger.value.reason == RUN_NOT_FOUND
    with pytest.raises(NotFound) as missing:
        await first_event(Caller(team.editor_id), str(uuid.uuid4()))
    assert missing.value.reason == RUN_NOT_FOUND
    with pytest.raises(InvalidArgument) as bad_id:
        await first_event(Caller(team.editor_id), "not-an-id")
    assert [v.field for v in bad_id.value.violations] == ["run_id"]
    with pytest.raises(InvalidArgument) as no_id:
        await first_event(Caller(team.editor_id), "")
    assert [v.field for v in no_id.value.violations] == ["run_id"]
    with pytest.raises(InvalidArgument) as negative:
        await first_event(Caller(team.editor_id), str(run_id), -1)
    assert [v.field for v in negative.value.violations] == ["after_seq"]
    # The generator form checks on its first step.
    with pytest.raises(NotFound):
        await anext(watcher.watch(Caller(team.stranger_id), str(run_id), 0))
    # Members and admins may watch.
    await first_event(Caller(team.viewer_id), str(run_id))
    await first_event(Caller(team.stranger_id, roles=frozenset({"admin"})), str(run_id))


# --- GetRun and ListRuns' domain -------------------------------------------------------------


async def test_reader_gets_and_lists_runs(
    runs_sessions: async_sessionmaker[AsyncSession], event_log: EventLog, team: Team
) -> None:
    reader = RunReader(runs_sessions)
    viewer = Caller(team.viewer_id)
    ids = [await new_run(runs_sessions, team) for _ in range(5)]
    await event_log.append(ids[1], LEASE, [Completed(RunStatus.SUCCEEDED, "ok", 1, 2)])

    run = await reader.get(viewer, str(ids[1]))
    assert (run.id, run.status, run.result, run.last_seq) == (ids[1], RunStatus.SUCCEEDED, "ok", 1)
    with pytest.raises(NotFound) as stranger:
        await reader.get(Caller(team.stranger_id), str(ids[1]))
    assert stranger.value.reason == RUN_NOT_FOUND
    with pytest.raises(InvalidArgument):
        await reader.get(viewer, "nope")

    pages = PageTokens(b"secret")
    seen: list[uuid.UUID] = []
    token = ""
    while True:
        page = pages.page("runs", 2, token, {"project_id": str(team.project_id)})
        listed = await reader.list(viewer, str(team.project_id), page)
        seen.extend(view.id for view in listed.items)
        token = pages.next_token(page, listed.next_key)
        if not token:
            break
    assert seen == list(reversed(ids))  # newest first

    page = pages.page("runs", 10, "")
    succeeded = await reader.list(viewer, str(team.project_id), page, RunStatus.SUCCEEDED)
    assert [view.id for view in succeeded.items] == [ids[1]]
    assert (
        await reader.list(viewer, str(team.project_id), page, task_id=str(uuid.uuid4()))
    ).items == []
    with pytest.raises(NotFound):
        await reader.list(Caller(team.stranger_id), str(team.project_id), page)
    with pytest.raises(InvalidArgument):
        await reader.list(viewer, str(team.project_id), page, task_id="nope")
    with pytest.raises(InvalidArgument):
        await reader.list(viewer, "", page)


# --- through the server: gRPC, and SSE through Envoy --------------------------------------------
# On the session's server (its run worker is running): the runs made here are leased to the
# test for an hour, so the worker leaves them alone, and the test appends their events.


@pytest.fixture(scope="module")
async def served(database_url: str, forge: ForgeServer) -> AsyncIterator[ServedDatabase]:
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    yield ServedDatabase(sessions, EventLog(sessions, EventCodec()))
    await dispose(engine)


@dataclass
class ServedDatabase:
    sessions: async_sessionmaker[AsyncSession]
    log: EventLog


async def served_run(channel: grpc.aio.Channel, served: ServedDatabase) -> tuple[ApiTeam, str]:
    api_team = await new_api_team(channel)
    team = Team(
        uuid.UUID(api_team.project_id),
        uuid.UUID(api_team.owner.user_id),
        uuid.UUID(api_team.viewer.user_id),
        uuid.UUID(api_team.stranger.user_id),
    )
    return api_team, str(await new_run(served.sessions, team))


async def grpc_watch(
    channel: grpc.aio.Channel, account: Account, run_id: str, after: int, sink: list[Any]
) -> None:
    call = agents_pb2_grpc.AgentServiceStub(channel).WatchRun(
        agents_pb2.WatchRunRequest(run_id=run_id, after_seq=after),
        metadata=account.metadata,
        timeout=30,
    )
    async for event in call:
        sink.append(event)


async def sse_watch(
    http: aiohttp.ClientSession, account: Account, run_id: str, after: int, sink: list[Any]
) -> None:
    query = f"?afterSeq={after}" if after else ""
    async with http.get(f"/v1/runs/{run_id}:watch{query}", headers=dict(account.metadata)) as got:
        assert got.status == 200
        assert got.content_type == "text/event-stream"
        buffer = b""
        async for chunk in got.content.iter_any():
            buffer += chunk
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                assert frame.startswith(b"data: "), frame
                sink.append(json.loads(frame.removeprefix(b"data: ")))


async def until(sink: list[Any], count: int) -> None:
    for _ in range(int(DEADLINE / 0.01)):
        if len(sink) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} events did not arrive within {DEADLINE}s: {len(sink)}")


async def test_watch_run_over_grpc_and_sse(
    channel: grpc.aio.Channel, http: aiohttp.ClientSession, served: ServedDatabase
) -> None:
    team, run_id = await served_run(channel, served)
    rid = uuid.UUID(run_id)
    await served.log.append(rid, LEASE, turn(1))
    await served.log.append(rid, LEASE, turn(2)[:4])  # 10 stored events
    sinks: list[list[Any]] = [[] for _ in range(5)]
    watchers = [
        asyncio.create_task(grpc_watch(channel, team.viewer, run_id, 0, sinks[0])),
        asyncio.create_task(grpc_watch(channel, team.owner, run_id, 0, sinks[1])),
        asyncio.create_task(grpc_watch(channel, team.viewer, run_id, 7, sinks[2])),
        asyncio.create_task(sse_watch(http, team.viewer, run_id, 0, sinks[3])),
        asyncio.create_task(sse_watch(http, team.viewer, run_id, 7, sinks[4])),
    ]
    for sink, count in zip(sinks, (10, 10, 3, 10, 3), strict=True):
        await until(sink, count)
    for step in range(3, 5):
        await served.log.append(rid, LEASE, turn(step))
    await served.log.append(rid, LEASE, [Completed(RunStatus.SUCCEEDED, "done", 40, 20)])
    await asyncio.wait_for(asyncio.gather(*watchers), DEADLINE)

    stored = [convert.stored_event_to_proto(e) for e in await served.log.read(rid, 0)]
    assert [e.seq for e in stored] == list(range(1, 24))
    assert sinks[0] == stored
    assert sinks[1] == stored
    assert sinks[2] == stored[7:]
    as_json = [json_format.MessageToDict(e) for e in stored]
    assert sinks[3] == as_json
    assert sinks[4] == as_json[7:]
    assert sinks[3][-1]["completed"]["status"] == "RUN_STATUS_SUCCEEDED"
    assert all("createTime" in frame for frame in sinks[3])

    # An ended run: from its last seq the stream ends at once.
    ended: list[Any] = []
    await grpc_watch(channel, team.viewer, run_id, 23, ended)
    await sse_watch(http, team.viewer, run_id, 23, ended)
    assert ended == []

    run = await agents_pb2_grpc.AgentServiceStub(channel).GetRun(
        agents_pb2.GetRunRequest(run_id=run_id), metadata=team.viewer.metadata, timeout=DEADLINE
    )
    assert (run.status, run.last_seq, run.step_count, run.result) == (
        agents_pb2.RUN_STATUS_SUCCEEDED,
        23,
        4,
        "done",
    )
    async with http.get(f"/v1/runs/{run_id}", headers=dict(team.viewer.metadata)) as got:
        assert got.status == 200
        assert (await got.json())["lastSeq"] == "23"


async def test_watch_run_refuses_strangers_and_bad_input(
    channel: grpc.aio.Channel, http: aiohttp.ClientSession, served: ServedDatabase
) -> None:
    team, run_id = await served_run(channel, served)
    events: list[Any] = []
    with pytest.raises(grpc.aio.AioRpcError) as stranger:
        await grpc_watch(channel, team.stranger, run_id, 0, events)
    assert stranger.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(stranger.value).reason == RUN_NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await grpc_watch(channel, team.viewer, "not-an-id", 0, events)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_violations(bad.value)) == ["run_id"]
    with pytest.raises(grpc.aio.AioRpcError) as negative:
        await grpc_watch(channel, team.viewer, run_id, -1, events)
    assert list(field_violations(negative.value)) == ["after_seq"]
    assert events == []
    async with http.get(f"/v1/runs/{run_id}:watch", headers=dict(team.stranger.metadata)) as got:
        assert got.status == 404


async def test_list_runs_over_grpc(channel: grpc.aio.Channel, served: ServedDatabase) -> None:
    team, first = await served_run(channel, served)
    members = Team(
        uuid.UUID(team.project_id),
        uuid.UUID(team.owner.user_id),
        uuid.UUID(team.viewer.user_id),
        uuid.UUID(team.stranger.user_id),
    )
    ids = [first] + [str(await new_run(served.sessions, members)) for _ in range(2)]
    await served.log.append(uuid.UUID(ids[1]), LEASE, [Failed(8, "X", "failed", {})])
    agents = agents_pb2_grpc.AgentServiceStub(channel)
    seen: list[str] = []
    token = ""
    while True:
        page = await agents.ListRuns(
            agents_pb2.ListRunsRequest(project_id=team.project_id, page_size=2, page_token=token),
            metadata=team.viewer.metadata,
            timeout=DEADLINE,
        )
        seen.extend(run.id for run in page.runs)
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(ids))
    failed = await agents.ListRuns(
        agents_pb2.ListRunsRequest(project_id=team.project_id, status=agents_pb2.RUN_STATUS_FAILED),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert [run.id for run in failed.runs] == [ids[1]]
    assert failed.runs[0].error.code == 8
    with pytest.raises(grpc.aio.AioRpcError) as stranger:
        await agents.ListRuns(
            agents_pb2.ListRunsRequest(project_id=team.project_id),
            metadata=team.stranger.metadata,
            timeout=DEADLINE,
        )
    assert stranger.value.code() == grpc.StatusCode.NOT_FOUND
