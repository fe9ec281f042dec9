"""The run event log against real PostgreSQL: contiguous seqs, fencing, the projection onto
the run's row, NOTIFY waking a waiter, and the codec's round trip for every event kind.

A database of its own (no server and no run worker on it), so nothing else claims or
appends to the runs made here. The lease is taken by setting `lease_token` directly."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from forge.agents.v1 import agents_pb2
from forge.artifacts.v1 import artifacts_pb2
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.agents.runs import convert, store
from server.agents.runs.convert import EventCodec
from server.agents.runs.events import (
    ApprovalGiven,
    ApprovalMode,
    ArtifactSaved,
    Completed,
    Delta,
    ExecReported,
    Failed,
    RunEvent,
    RunStatus,
    StatusChanged,
    ToolAnswered,
    ToolCalled,
    TranscriptSummarized,
    TurnUsage,
    UserSteered,
)
from server.agents.runs.log import EventLog, LeaseLost
from server.agents.runs.notify import RunNotifications, listen_dsn
from server.agents.runs.views import RunView
from server.agents.store import system_counters
from server.core.ports import ExecBegan, ExecChunk, ExecEnded
from server.db.embedded import EmbeddedPostgres
from server.db.engine import dispose, make_engine, make_session_factory
from server.db.migrate import upgrade
from server.db.models import Project, ProjectMember, User
from server.db.run_models import RunRow

LEASE = 7

# --- fixtures shared with test_watch.py ----------------------------------------------------


@pytest.fixture(scope="package")
async def runs_engine(postgres: EmbeddedPostgres) -> AsyncIterator[AsyncEngine]:
    url = await postgres.ensure_database("forge_run_log")
    engine = make_engine(url)
    await upgrade(engine)
    yield engine
    await dispose(engine)


@pytest.fixture(scope="package")
def runs_sessions(runs_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_session_factory(runs_engine)


@pytest.fixture(scope="package")
async def notifications(runs_engine: AsyncEngine) -> AsyncIterator[RunNotifications]:
    listener = RunNotifications(listen_dsn(runs_engine))
    await listener.start()
    assert listener.listening
    yield listener
    await listener.stop()


@pytest.fixture(scope="package")
def event_log(runs_sessions: async_sessionmaker[AsyncSession]) -> EventLog:
    return EventLog(runs_sessions, EventCodec())


@dataclass
class Team:
    """A project with an editor and a viewer; `stranger` belongs to no project."""

    project_id: uuid.UUID
    editor_id: uuid.UUID
    viewer_id: uuid.UUID
    stranger_id: uuid.UUID


async def new_team(sessions: async_sessionmaker[AsyncSession]) -> Team:
    async with sessions() as db, db.begin():
        users = [
            User(email=f"{uuid.uuid4()}@example.com", password_hash="x", display_name=name)
            for name in ("editor", "viewer", "stranger")
        ]
        db.add_all(users)
        await db.flush()
        project = Project(name="runs", creator_id=users[0].id)
        db.add(project)
        await db.flush()
        db.add_all(
            [
                ProjectMember(project_id=project.id, user_id=users[0].id, role="editor"),
                ProjectMember(project_id=project.id, user_id=users[1].id, role="viewer"),
            ]
        )
    return Team(project.id, users[0].id, users[1].id, users[2].id)


async def new_run(
    sessions: async_sessionmaker[AsyncSession], team: Team, **columns: Any
) -> uuid.UUID:
    """A running run whose lease (token LEASE) this test holds."""
    values: dict[str, Any] = {
        "project_id": team.project_id,
        "agent_id": "coder",
        "goal": "write a function",
        "model": "echo",
        "status": "running",
        "approval_mode": "auto",
        "max_steps": 20,
        "token_budget": 100_000,
        "time_limit_seconds": 600.0,
        "creator_id": team.editor_id,
        "owner": "test",
        "lease_token": LEASE,
        **columns,
    }
    async with sessions() as db, db.begin():
        row = await store.insert_run(db, **values)
        await db.execute(
            update(RunRow)
            .where(RunRow.id == row.id)
            .values(lease_expires_at=func.now() + timedelta(hours=1))
        )
        return row.id


async def run_row(sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> RunRow:
    async with sessions() as db:
        row = await store.get_run(db, run_id)
        assert row is not None
        return row


@pytest.fixture
async def team(runs_sessions: async_sessionmaker[AsyncSession]) -> Team:
    return await new_team(runs_sessions)


# --- every event kind ----------------------------------------------------------------------

STARTED = datetime(2025, 5, 17, 12, 30, 1, 250_000, tzinfo=UTC)
EVERY_KIND: list[RunEvent] = [
    StatusChanged(RunStatus.RUNNING, "step 1 of 20", step=1),
    Delta("Let me write "),
    Delta("the file."),
    ToolCalled("call-1", "editor", '{"command": "create", "path": "main.py"}'),
    ToolAnswered("call-1", "editor", "created main.py"),
    ToolCalled("call-2", "bash", '{"command": "python main.py"}', signature="c2lnbmF0dXJl"),
    ExecReported(ExecBegan("exec-1", "sandbox-1", STARTED)),
    ExecReported(ExecChunk("stdout", b"hello\n")),
    ExecReported(ExecChunk("stderr", b"warning\xff\n")),
    ExecReported(
        ExecEnded(
            exit_code=0,
            signal=0,
            duration=timedelta(seconds=1, microseconds=500),
            timed_out=False,
            oom_killed=False,
            output_truncated=True,
            reason="exited",
            stdout_bytes=6,
            stderr_bytes=9,
        )
    ),
    ToolAnswered("call-2", "bash", "exit 1", is_error=True),
    ArtifactSaved(artifacts_pb2.Artifact(id="a-1", filename="main.py", title="Main")),
    TurnUsage(120, 45),
    UserSteered("use type hints", "user-1"),
    StatusChanged(RunStatus.WAITING_FOR_APPROVAL, tool_call_id="call-2"),
    ApprovalGiven("call-2", approved=False, reason="not now", user_id="user-2"),
    TranscriptSummarized("the first steps, in short", 3, 30, 8),
    Completed(RunStatus.SUCCEEDED, "done", 120, 45),
    Failed(4, "RUN_TIME_LIMIT_EXCEEDED", "the time limit passed", {"limit": "600s"}),
]


def test_every_kind_round_trips() -> None:
    codec = EventCodec()
    kinds = set()
    for event in EVERY_KIND:
        decoded = codec.decode(codec.encode(event))
        if isinstance(event, ToolCalled):  # the signature is not part of the contract
            assert decoded == ToolCalled(event.id, event.name, event.arguments)
        else:
            assert decoded == event
        kind = codec.kind(event)
        assert agents_pb2.RunEvent.FromString(codec.encode(event)).WhichOneof("event") == kind
        kinds.add(kind)
    oneof = agents_pb2.RunEvent.DESCRIPTOR.oneofs_by_name["event"]
    assert kinds == {field.name for field in oneof.fields}


def test_encoding_carries_no_seq_or_time() -> None:
    message = agents_pb2.RunEvent.FromString(EventCodec().encode(Delta("x")))
    assert message.seq == 0
    assert not message.HasField("create_time")


# --- appending -----------------------------------------------------------------------------


async def test_appends_get_contiguous_seqs(
    runs_sessions: async_sessionmaker[AsyncSession], event_log: EventLog, team: Team
) -> None:
    run_id = await new_run(runs_sessions, team)
    assert await event_log.append(run_id, LEASE, []) == []
    first = await event_log.append(run_id, LEASE, EVERY_KIND[:3])
    second = await event_log.append(run_id, LEASE, [Delta("more")])
    third = await event_log.append(run_id, LEASE, EVERY_KIND[3:12])
    assert [e.seq for e in first + second + third] == list(range(1, 14))

    stored = await event_log.read(run_id, 0)
    assert [e.seq for e in stored] == list(range(1, 14))
    assert [e.event for e in stored] == [*EVERY_KIND[:3], Delta("more"), *EVERY_KIND[3:12]]
    # The signature is kept beside the payload, never in it.
    signed = next(e for e in stored if isinstance(e.event, ToolCalled) and e.event.signature)
    assert signed.event == EVERY_KIND[5]
    assert b"c2lnbmF0dXJl" not in signed.payload
    assert [e.payload for e in stored] == [e.payload for e in first + second + third]
    assert stored[0].create_time.tzinfo is not None

    assert [e.seq for e in await event_log.read(run_id, 10)] == [11, 12, 13]
    assert [e.seq for e in await event_log.read(run_id, 2, limit=3)] == [3, 4, 5]
    assert (await run_row(runs_sessions, run_id)).last_seq == 13


async def test_concurrent_batches_never_share_a_seq(
    runs_sessions: async_sessionmaker[AsyncSession], event_log: EventLog, team: Team
) -> None:
    run_id = await new_run(runs_sessions, team)
    batches = [[Delta(f"{i}-{j}") for j in range(3)] for i in range(10)]
    await asyncio.gather(*(event_log.append(run_id, LEASE, batch) for batch in batches))
    stored = await event_log.read(run_id, 0)
    assert [e.seq for e in stored] == list(range(1, 31))
    # Each batch is contiguous.
    texts = [e.event.text for e in stored if isinstance(e.event, Delta)]
    for start in range(0, 30, 3):
        assert len({text.split("-")[0] for text in texts[start : start + 3]}) == 1


async def test_a_stale_lease_writes_nothing(
    runs_sessions: async_sessionmaker[AsyncSession], event_log: EventLog, team: Team
) -> None:
    run_id = await new_run(runs_sessions, team)
    await event_log.append(run_id, LEASE, [Delta("mine")])
    async with runs_sessions() as db, db.begin():  # another process takes the run over
        await db.execute(
            update(RunRow).where(RunRow.id == run_id).values(lease_token=RunRow.lease_token + 1)
        )
    with pytest.raises(LeaseLost):
        await event_log.append(run_id, LEASE, [Delta("stale"), TurnUsage(5, 5)])
    row = await run_row(runs_sessions, run_id)
    assert (row.last_seq, row.input_tokens) == (1, 0)
    assert [e.event for e in await event_log.read(run_id, 0)] == [Delta("mine")]
    await event_log.append(run_id, LEASE + 1, [Delta("theirs")])
    assert [e.seq for e in await event_log.read(run_id, 0)] == [1, 2]


async def test_an_ended_run_takes_no_more_events(
    runs_sessions: async_sessionmaker[AsyncSession], event_log: EventLog, team: Team
) -> None:
    run_id = await new_run(runs_sessions, team)
    await event_log.append(run_id, LEASE, [Completed(RunStatus.CANCELLED, "", 0, 0)])
    with pytest.raises(LeaseLost):
        await event_log.append(run_id, LEASE, [Delta("late")])
    assert (await run_row(runs_sessions, run_id)).last_seq == 1


async def test_unknown_run_is_a_lost_lease(event_log: EventLog) -> None:
    with pytest.raises(LeaseLost):
        await event_log.append(uuid.uuid4(), LEASE, [Delta("x")])


# --- the projection ------------------------------------------------------------------------


async def test_projection_follows_a_run(
    runs_sessions: async_sessionmaker[AsyncSession], event_log: EventLog, team: Team
) -> None:
    run_id = await new_run(runs_sessions, team, status="queued")
    row = await run_row(runs_sessions, run_id)
    assert row.start_time is None
    assert row.status == "queued"

    await event_log.append(run_id, LEASE, [StatusChanged(RunStatus.RUNNING, step=1)])
    row = await run_row(runs_sessions, run_id)
    assert (row.status, row.step_count) == ("running", 1)
    started = row.start_time
    assert started is not None

    call = ToolCalled("call-9", "bash", '{"command": "ls"}', signature="sig")
    await event_log.append(
        run_id,
        LEASE,
        [
            StatusChanged(RunStatus.RUNNING, step=2),
            Delta("running ls"),
            call,
            TurnUsage(100, 20),
            StatusChanged(RunStatus.WAITING_FOR_APPROVAL, tool_call_id="call-9"),
        ],
    )
    row = await run_row(runs_sessions, run_id)
    assert (row.status, row.step_count, row.start_time) == ("waiting_for_approval", 2, started)
    assert (row.input_tokens, row.output_tokens) == (100, 20)
    assert row.pending_tool_call == {
        "id": "call-9",
        "name": "bash",
        "arguments": '{"command": "ls"}',
    }
    assert row.owner is None
    assert row.lease_expires_at is None
    view = RunView.of(row)
    assert view.status is RunStatus.WAITING_FOR_APPROVAL
    assert convert.run_to_proto(view).pending_tool_call.id == "call-9"

    # An editor approves; the run becomes claimable, and its next owner records it.
    async with runs_sessions() as db, db.begin():
        assert await store.record_approval(db, run_id, "call-other", {"approved": True}) is None
        decision = ApprovalGiven("call-9", approved=True, reason="", user_id=str(team.editor_id))
        approved = await store.record_approval(db, run_id, "call-9", decision)
        assert approved is not None
        assert approved.status == "queued"
        assert approved.approval == {
            "tool_call_id": "call-9",
            "approved": True,
            "reason": "",
            "user_id": str(team.editor_id),
        }
        assert await store.record_approval(db, run_id, "call-9", decision) is None
        await db.execute(
            update(RunRow).where(RunRow.id == run_id).values(lease_token=LEASE, owner="test")
        )
        for content in ("first", "second", "third"):
            pushed = await store.push_inbox(db, run_id, {"content": content, "author_user_id": "u"})
            assert pushed is not None
        assert pushed is not None
        assert [m["content"] for m in pushed.inbox] == ["first", "second", "third"]

    await event_log.append(
        run_id,
        LEASE,
        [
            decision,
            UserSteered("first", "u"),
            UserSteered("second", "u"),
            StatusChanged(RunStatus.RUNNING, step=3),
            TurnUsage(10, 5),
        ],
    )
    row = await run_row(runs_sessions, run_id)
    assert row.pending_tool_call is None
    assert row.approval is None
    assert row.inbox == [{"content": "third", "author_user_id": "u"}]
    assert (row.status, row.step_count, row.input_tokens, row.output_tokens) == (
        "running",
        3,
        110,
        25,
    )

    await event_log.append(run_id, LEASE, [UserSteered("third", "u")])
    assert (await run_row(runs_sessions, run_id)).inbox == []

    await event_log.append(run_id, LEASE, [Completed(RunStatus.SUCCEEDED, "all done", 110, 25)])
    row = await run_row(runs_sessions, run_id)
    assert (row.status, row.result, row.owner, row.lease_expires_at) == (
        "succeeded",
        "all done",
        None,
        None,
    )
    assert row.end_time is not None
    assert row.last_seq == 13
    proto = convert.run_to_proto(RunView.of(row))
    assert proto.status == agents_pb2.RUN_STATUS_SUCCEEDED
    assert (proto.usage.input_tokens, proto.usage.output_tokens, proto.last_seq) == (110, 25, 13)
    assert proto.time_limit.seconds == 600
    async with runs_sessions() as db, db.begin():
        assert await store.push_inbox(db, run_id, {"content": "late"}) is None
        assert await store.request_cancel(db, run_id) is None


async def test_waiting_for_a_call_stored_earlier(
    runs_sessions: async_sessionmaker[AsyncSession], event_log: EventLog, team: Team
) -> None:
    run_id = await new_run(runs_sessions, team)
    await event_log.append(
        run_id, LEASE, [ToolCalled("c1", "editor", "{}"), ToolCalled("c2", "bash", '{"a": 1}')]
    )
    await event_log.append(
        run_id, LEASE, [StatusChanged(RunStatus.WAITING_FOR_APPROVAL, tool_call_id="c2")]
    )
    row = await run_row(runs_sessions, run_id)
    assert row.pending_tool_call == {"id": "c2", "name": "bash", "arguments": '{"a": 1}'}


async def test_a_failed_run_keeps_its_error(
    runs_sessions: async_sessionmaker[AsyncSession], event_log: EventLog, team: Team
) -> None:
    run_id = await new_run(runs_sessions, team)
    failure = Failed(8, "RUN_STEP_BUDGET_EXHAUSTED", "2 steps used", {"max_steps": "2"})
    await event_log.append(run_id, LEASE, [failure])
    row = await run_row(runs_sessions, run_id)
    assert row.status == "failed"
    assert row.end_time is not None
    assert row.owner is None
    view = RunView.of(row)
    assert view.error is not None
    assert view.error.reason == "RUN_STEP_BUDGET_EXHAUSTED"
    proto = convert.run_to_proto(view)
    assert (proto.status, proto.error.code, proto.error.message) == (
        agents_pb2.RUN_STATUS_FAILED,
        8,
        "2 steps used",
    )


# --- the other writes and reads --------------------------------------------------------------


async def test_run_rows(
    runs_sessions: async_sessionmaker[AsyncSession], event_log: EventLog, team: Team
) -> None:
    run_id = await new_run(runs_sessions, team, approval_mode="ask_before_bash")
    async with runs_sessions() as db, db.begin():
        found = await store.run_with_role(db, run_id, team.viewer_id)
        assert found is not None
        assert found[1] == "viewer"
        found = await store.run_with_role(db, run_id, team.stranger_id)
        assert found is not None
        assert found[1] is None
        assert await store.run_with_role(db, uuid.uuid4(), team.editor_id) is None
        assert RunView.of(found[0]).approval_mode is ApprovalMode.ASK_BEFORE_BASH

        active = await store.count_active_runs(db, team.editor_id)
        assert active == 1
        sandbox = uuid.uuid4()
        assert not await store.set_sandbox(db, run_id, LEASE + 1, sandbox)
        assert await store.set_sandbox(db, run_id, LEASE, sandbox)
        cancelled = await store.request_cancel(db, run_id)
        assert cancelled is not None
        assert cancelled.cancel_requested
        assert cancelled.sandbox_id == sandbox
        assert await store.request_cancel(db, uuid.uuid4()) is None
    await event_log.append(run_id, LEASE, [Completed(RunStatus.CANCELLED, "", 0, 0)])
    async with runs_sessions() as db:
        assert await store.count_active_runs(db, team.editor_id) == 0


async def test_system_counters_count_runs(
    runs_sessions: async_sessionmaker[AsyncSession], event_log: EventLog, team: Team
) -> None:
    counters = system_counters()
    query = select(counters["runs"].label("runs"), counters["active_runs"].label("active"))
    async with runs_sessions() as db:
        before = (await db.execute(query)).one()
    ended = await new_run(runs_sessions, team)
    await new_run(runs_sessions, team, status="waiting_for_approval")
    await event_log.append(ended, LEASE, [Completed(RunStatus.SUCCEEDED, "", 0, 0)])
    async with runs_sessions() as db:
        after = (await db.execute(query)).one()
    assert (after.runs - before.runs, after.active - before.active) == (2, 1)


# --- notifications ---------------------------------------------------------------------------


async def test_notify_wakes_a_waiter(
    runs_sessions: async_sessionmaker[AsyncSession],
    event_log: EventLog,
    notifications: RunNotifications,
    team: Team,
) -> None:
    run_id = await new_run(runs_sessions, team)
    other = await new_run(runs_sessions, team)
    waiter = asyncio.create_task(notifications.wait(run_id, 0, timeout=30))
    await asyncio.sleep(0.05)
    await event_log.append(other, LEASE, [Delta("not this run")])
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await event_log.append(run_id, LEASE, [Delta("this one")])
    await asyncio.wait_for(waiter, 5)

    # A notification that arrived between a read and the wait is not missed.
    await event_log.append(run_id, LEASE, [Delta("again")])
    await asyncio.sleep(0.2)
    await asyncio.wait_for(notifications.wait(run_id, 1, timeout=30), 1)
    # Nothing newer: the wait runs to its timeout, quietly.
    loop = asyncio.get_running_loop()
    began = loop.time()
    await notifications.wait(run_id, 2, timeout=0.2)
    assert loop.time() - began >= 0.19


async def test_control_notifications(
    runs_sessions: async_sessionmaker[AsyncSession], notifications: RunNotifications
) -> None:
    seen: list[tuple[str, uuid.UUID]] = []
    arrived = asyncio.Event()

    def listener(kind: str, run_id: uuid.UUID) -> None:
        seen.append((kind, run_id))
        arrived.set()

    notifications.add_control_listener(listener)
    run_id = uuid.uuid4()
    async with runs_sessions() as db, db.begin():
        await RunNotifications.send_control(db, "cancel", run_id)
        assert not seen  # sent at commit
    await asyncio.wait_for(arrived.wait(), 5)
    assert seen == [("cancel", run_id)]
    with pytest.raises(ValueError, match="not a run control kind"):
        async with runs_sessions() as db:
            await RunNotifications.send_control(db, "explode", run_id)


async def test_listener_reconnects_and_wakes_waiters(
    runs_engine: AsyncEngine,
    runs_sessions: async_sessionmaker[AsyncSession],
    event_log: EventLog,
    team: Team,
) -> None:
    listener = RunNotifications(listen_dsn(runs_engine))
    await listener.start()
    try:
        run_id = await new_run(runs_sessions, team)
        waiter = asyncio.create_task(listener.wait(run_id, 0, timeout=60))
        await asyncio.sleep(0.05)
        pid = listener._connection.get_server_pid()
        async with runs_sessions() as db:  # the database drops the listening connection
            assert await db.scalar(select(func.pg_terminate_backend(pid)))
        await asyncio.wait_for(waiter, 10)  # woken to re-read
        for _ in range(100):
            if listener.connections >= 2 and listener.listening:
                break
            await asyncio.sleep(0.1)
        assert listener.connections >= 2
        assert listener.listening
        woken = asyncio.create_task(listener.wait(run_id, 0, timeout=30))
        await asyncio.sleep(0.05)
        await event_log.append(run_id, LEASE, [Delta("after the reconnect")])
        await asyncio.wait_for(woken, 5)
    finally:
        await listener.stop()


def test_listen_dsn() -> None:
    assert listen_dsn("postgresql+asyncpg://forge:s3cret@db:5432/forge") == (
        "postgresql://forge:s3cret@db:5432/forge"
    )
    assert listen_dsn("postgres://u@/forge?host=/tmp/socket").startswith("postgresql://u@/forge?")
