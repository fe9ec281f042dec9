"""Assembles the parts of agent runs for AgentService's module: the event log, the
notifications listener, the watcher and reader, the tool registry, the worker that owns
run loops, and what StartRun and the control RPCs use."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from server.agents.profiles import AgentProfiles
from server.agents.runs.control import RunControl
from server.agents.runs.convert import EventCodec
from server.agents.runs.log import EventLog
from server.agents.runs.loop import LoopDeps, RunLoop
from server.agents.runs.notify import RunNotifications, listen_dsn
from server.agents.runs.starts import RunStarts
from server.agents.runs.tools import ToolRegistry
from server.agents.runs.watch import RunReader, RunWatcher
from server.agents.runs.worker import RunWorker
from server.agents.usage import UsageLedger
from server.core.module import Background, BuildContext
from server.db.engine import engine_of
from server.llm import ProviderRegistry
from server.llm.own_keys import NO_OWN_KEY_LOOKUP, OwnKeysLookup


@dataclass(frozen=True)
class RunsParts:
    log: EventLog
    notifications: RunNotifications
    worker: RunWorker
    tools: ToolRegistry
    starts: RunStarts
    control: RunControl
    reader: RunReader
    watcher: RunWatcher

    @property
    def background(self) -> list[Background]:
        """Started in this order and stopped in reverse: the worker hands its runs over
        (releasing leases, notifying) while the notifications are still up."""
        return [self.notifications, self.worker]


def build_runs(
    ctx: BuildContext,
    providers: ProviderRegistry,
    profiles: AgentProfiles,
    ledger: UsageLedger,
    tools: ToolRegistry | None = None,
    own_keys: OwnKeysLookup = NO_OWN_KEY_LOOKUP,
) -> RunsParts:
    settings, sessions = ctx.settings, ctx.sessions
    log = EventLog(sessions, EventCodec())
    notifications = RunNotifications(listen_dsn(engine_of(sessions)))
    registry = tools if tools is not None else ToolRegistry(settings)
    deps = LoopDeps(
        sessions=sessions,
        log=log,
        tools=registry,
        providers=providers,
        profiles=profiles,
        ledger=ledger,
        hooks=ctx.hooks,
        settings=settings,
        own_keys=own_keys,
    )

    def make_loop(run_id: uuid.UUID, lease_token: int) -> RunLoop:
        return RunLoop(deps, run_id, lease_token)

    worker = RunWorker(sessions, settings, notifications, make_loop)
    return RunsParts(
        log=log,
        notifications=notifications,
        worker=worker,
        tools=registry,
        starts=RunStarts(
            sessions, settings, providers, profiles, ctx.hooks, worker, own_keys=own_keys
        ),
        control=RunControl(sessions, log, notifications, worker.owner, settings.run_lease_seconds),
        reader=RunReader(sessions),
        watcher=RunWatcher(sessions, log, notifications),
    )
