"""The hooks and ports through which one service reaches another.

No service package imports another: a service offers implementations of these (in its
`module.build`), and the others consume them through `Hooks`, filled once every module is
built. See docs/architecture.md for who offers and who consumes each.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from google.protobuf.message import Message
from sqlalchemy import ScalarSelect
from sqlalchemy.ext.asyncio import AsyncSession

from server.core.limits import LimitsPort
from server.core.ports import AgentRecordsPort, ArtifactPort, SandboxPort, TaskBoardPort

if TYPE_CHECKING:
    from server.llm.own_keys import OwnKeysLookup

log = logging.getLogger(__name__)

T = TypeVar("T")

# --- deleting a project ----------------------------------------------------------------
# A hook runs inside the transaction that deletes the project (to delete or mark its own
# rows) and may return a callback to run once that transaction has committed (to remove
# things outside the database: containers, blobs).

AfterCommit = Callable[[], Awaitable[None]]
ProjectDeletionHook = Callable[[AsyncSession, uuid.UUID], Awaitable[AfterCommit | None]]


class ProjectDeletionHooks:
    """Offered by every service that keeps rows per project; run by ProjectService."""

    def __init__(self) -> None:
        self._hooks: list[ProjectDeletionHook] = []

    def register(self, hook: ProjectDeletionHook) -> None:
        self._hooks.append(hook)

    async def run_in_transaction(
        self, db: AsyncSession, project_id: uuid.UUID
    ) -> list[AfterCommit]:
        after: list[AfterCommit] = []
        for hook in self._hooks:
            callback = await hook(db, project_id)
            if callback is not None:
                after.append(callback)
        return after

    @staticmethod
    async def run_after_commit(callbacks: list[AfterCommit]) -> None:
        for callback in callbacks:
            try:
                await callback()
            except Exception:
                # The project is gone; leftovers are collected by the owning service's reaper.
                log.exception("project clean-up step failed")


# --- a chat answer completed -----------------------------------------------------------


@dataclass(frozen=True)
class CompletedAnswer:
    project_id: uuid.UUID
    conversation_id: uuid.UUID
    message_id: uuid.UUID
    user_id: uuid.UUID
    text: str


class AnswerListener(Protocol):
    """Offered by services that act on finished chat answers (Artifacts extracts code
    blocks); called by AgentService's Chat."""

    async def answer_completed(self, answer: CompletedAnswer) -> Sequence[Message]:
        """Runs after the assistant message is stored as complete, before the `completed`
        event. Returns contract messages (e.g. `forge.artifacts.v1.Artifact`) that Chat
        streams as events; Chat passes them through without looking inside."""
        ...


# --- usage -----------------------------------------------------------------------------


class UsageCharges(Protocol):
    """Offered by AgentService's usage ledger; used by services that spend model capacity
    outside chat (GenerateImage)."""

    async def charge_image(self, db: AsyncSession, user_id: uuid.UUID, model: str) -> None:
        """Counts one generated image for the user today (UTC), in the caller's
        transaction, so the image and its charge commit together."""
        ...


# --- system statistics -----------------------------------------------------------------

SystemCounters = Mapping[str, ScalarSelect[int]]
"""Named scalar subqueries over a service's own tables (e.g. {"artifacts": count(*)}),
offered by each service; GetSystemStats (auth) runs all of them in one round trip."""


# --- the registry ----------------------------------------------------------------------


class Port(Generic[T]):
    """One implementation of an interface, offered by one module and used by others.

    Consumers keep the Port and call `get()` when they need it: modules are built in any
    order, and a port is filled once all of them are built."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._impl: T | None = None

    def provide(self, impl: T) -> None:
        if self._impl is not None:
            raise RuntimeError(f"{self.name} is offered twice")
        self._impl = impl

    @property
    def provided(self) -> bool:
        return self._impl is not None

    def get(self) -> T:
        if self._impl is None:
            raise RuntimeError(f"no module offers {self.name}")
        return self._impl


@dataclass(frozen=True)
class Offers:
    """What one module offers the others (see `Hooks` for who uses what)."""

    project_deletion: Sequence[ProjectDeletionHook] = ()
    answer_listeners: Sequence[AnswerListener] = ()
    usage: UsageCharges | None = None
    system_counters: SystemCounters = field(default_factory=dict)
    sandbox: SandboxPort | None = None
    artifacts: ArtifactPort | None = None
    task_board: TaskBoardPort | None = None
    agent_records: AgentRecordsPort | None = None
    limits: LimitsPort | None = None
    own_keys: OwnKeysLookup | None = None


class Hooks:
    """Every hook and port of one server: given to each module's `build`, filled from the
    modules' `Offers` once all are built (`install`)."""

    def __init__(self) -> None:
        self.project_deletion = ProjectDeletionHooks()
        self.answer_listeners: list[AnswerListener] = []
        self.usage: Port[UsageCharges] = Port("the usage ledger")
        self.system_counters: dict[str, ScalarSelect[int]] = {}
        # Used by agent runs (see ports.py).
        self.sandbox: Port[SandboxPort] = Port("the sandbox port")
        self.artifacts: Port[ArtifactPort] = Port("the artifact port")
        self.task_board: Port[TaskBoardPort] = Port("the task board port")
        # Used by artifacts (an artifact's sources).
        self.agent_records: Port[AgentRecordsPort] = Port("the agent records port")
        # Each user's fair shares (core/limits.py), offered by auth.
        self.limits: Port[LimitsPort] = Port("the user limits port")
        # Callers' own provider keys (server/llm/own_keys.py), offered by agents; used by
        # GenerateImage (artifacts).
        self.own_keys: Port[OwnKeysLookup] = Port("the own provider keys port")

    def install(self, offers: Offers) -> None:
        for hook in offers.project_deletion:
            self.project_deletion.register(hook)
        self.answer_listeners.extend(offers.answer_listeners)
        if offers.usage is not None:
            self.usage.provide(offers.usage)
        if offers.sandbox is not None:
            self.sandbox.provide(offers.sandbox)
        if offers.artifacts is not None:
            self.artifacts.provide(offers.artifacts)
        if offers.task_board is not None:
            self.task_board.provide(offers.task_board)
        if offers.agent_records is not None:
            self.agent_records.provide(offers.agent_records)
        if offers.limits is not None:
            self.limits.provide(offers.limits)
        if offers.own_keys is not None:
            self.own_keys.provide(offers.own_keys)
        for name, counter in offers.system_counters.items():
            if name in self.system_counters:
                raise RuntimeError(f"system counter {name!r} is offered twice")
            self.system_counters[name] = counter
