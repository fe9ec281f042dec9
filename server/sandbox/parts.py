"""The sandbox domain's parts, wired once: module.build serves them, tests drive them.

Every part reaches the container engine through one EngineProvider, which the backend
connection fills; none calls back into another part's owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.core.cancels import Cancels
from server.core.holds import Holds
from server.core.ids import process_owner_id
from server.core.limits import DefaultLimits, LimitsPort
from server.core.tasks import TaskSupervisor
from server.sandbox.connection import BackendConnection
from server.sandbox.engine import EngineProvider
from server.sandbox.exec_shares import ExecShares
from server.sandbox.executions import ExecutionSlots
from server.sandbox.file_calls import FileCalls
from server.sandbox.launcher import ExecLauncher
from server.sandbox.lifecycle import SandboxLifecycle
from server.sandbox.provision import Provisioner
from server.sandbox.retire import Retirer
from server.sandbox.runtimes import Runtimes, default_limits
from server.sandbox.views import Lifetimes


@dataclass(frozen=True)
class SandboxParts:
    settings: Settings
    engine: EngineProvider
    connection: BackendConnection
    """Background work: start() connects (or keeps trying), stop() tears down."""
    lifecycle: SandboxLifecycle
    executions: ExecLauncher
    files: FileCalls


def assemble(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    shares: LimitsPort | None = None,
    cancels: Cancels | None = None,
    holds: Holds | None = None,
) -> SandboxParts:
    """The parts on `settings` and `sessions`, enforcing each user's `shares` (the server
    defaults when None) counted in `holds` (the server's; None: the parts' own, which the
    connection starts and stops), with executions stopped through `cancels` when given;
    nothing runs until `connection.start()`."""
    own_holds = holds is None
    holds = holds or Holds(sessions, settings.process_lease_seconds)
    runtimes = Runtimes.from_settings(settings)
    defaults = default_limits(settings)
    lifetimes = Lifetimes(
        idle_ttl=timedelta(seconds=settings.sandbox_idle_ttl_seconds),
        max_lifetime=timedelta(seconds=settings.sandbox_max_lifetime_seconds),
    )
    engine = EngineProvider()
    owner = process_owner_id()
    work = TaskSupervisor("sandbox")
    retirer = Retirer(sessions, engine)
    provisioner = Provisioner(settings, sessions, engine, retirer, work, shares)
    slots = ExecutionSlots(settings.sandbox_max_concurrent_execs)
    return SandboxParts(
        settings=settings,
        engine=engine,
        connection=BackendConnection(
            settings,
            sessions,
            engine,
            runtimes=runtimes,
            lifetimes=lifetimes,
            retirer=retirer,
            work=work,
            owner=owner,
            own_holds=holds if own_holds else None,
        ),
        lifecycle=SandboxLifecycle(
            sessions,
            engine,
            runtimes=runtimes,
            default_limits=defaults,
            lifetimes=lifetimes,
            provisioner=provisioner,
            retirer=retirer,
            slots=slots,
            owner=owner,
        ),
        executions=ExecLauncher(
            settings,
            sessions,
            runtimes,
            defaults,
            engine=engine,
            provisioner=provisioner,
            retirer=retirer,
            slots=slots,
            exec_shares=ExecShares(
                shares or DefaultLimits(settings), settings.project_max_concurrent_execs, holds
            ),
            tasks=work,
            owner=owner,
            cancels=cancels,
        ),
        files=FileCalls(sessions, engine),
    )
