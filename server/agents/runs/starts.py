"""StartRun: check the request, insert the run already leased to this process (with the
conversation its transcript goes to: the one given, or a new one), attach it to its task
(moved to in_progress) and start its loop at once."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents.access import conversation_not_found, project_with_role
from server.agents.chat import title_from
from server.agents.profiles import AgentProfiles, agent_not_found
from server.agents.runs import leases, store
from server.agents.runs.events import ApprovalMode
from server.agents.runs.leases import Lease
from server.agents.runs.views import RunView
from server.agents.runs.worker import RunWorker
from server.config import Settings
from server.core.access import ProjectRole
from server.core.context import Caller
from server.core.errors import (
    FieldViolation,
    ForgeError,
    InvalidArgument,
    Violations,
)
from server.core.hooks import Hooks
from server.core.ids import new_id, parse_id
from server.core.limits import UserShares, quota_exceeded
from server.db.agent_models import Conversation
from server.llm import ProviderRegistry
from server.llm.own_keys import NO_OWN_KEY_LOOKUP, OwnKeysLookup

log = logging.getLogger(__name__)

MAX_GOAL_CHARS = 100_000
MAX_TOKEN_BUDGET = 100_000_000
RUN_LIMIT_REACHED = "RUN_LIMIT_REACHED"
MODEL_WITHOUT_TOOLS = "MODEL_WITHOUT_TOOLS"


@dataclass(frozen=True, slots=True)
class RunDraft:
    """StartRun's fields, as plain values (0 / None: the server's default)."""

    project_id: str
    agent_id: str
    goal: str
    task_id: str = ""
    model: str = ""
    max_steps: int = 0
    sandbox_id: str = ""
    approval_mode: ApprovalMode = ApprovalMode.AUTO
    token_budget: int = 0
    time_limit: timedelta | None = None
    conversation_id: str = ""


@dataclass(frozen=True, slots=True)
class _Limits:
    max_steps: int
    token_budget: int
    time_limit_seconds: float


def _limits(draft: RunDraft, settings: Settings) -> _Limits:
    violations = Violations()
    violations.check(bool(draft.project_id), "project_id", "is required")
    violations.check(bool(draft.agent_id), "agent_id", "is required")
    if not draft.goal.strip():
        violations.add("goal", "is required")
    elif len(draft.goal) > MAX_GOAL_CHARS:
        violations.add("goal", f"must be at most {MAX_GOAL_CHARS} characters")
    elif "\x00" in draft.goal:
        violations.add("goal", "must not contain NUL characters")
    most = settings.run_max_steps_limit
    max_steps = draft.max_steps or min(settings.run_default_max_steps, most)
    violations.check(1 <= max_steps <= most, "max_steps", f"must be between 1 and {most}")
    budget = draft.token_budget or settings.run_default_token_budget
    violations.check(
        1 <= budget <= MAX_TOKEN_BUDGET, "token_budget", f"must be between 1 and {MAX_TOKEN_BUDGET}"
    )
    longest = settings.run_max_time_limit_seconds
    seconds = (
        draft.time_limit.total_seconds()
        if draft.time_limit is not None
        else min(settings.run_default_time_limit_seconds, longest)
    )
    violations.check(
        0 < seconds <= longest,
        "time_limit",
        f"must be more than 0 and at most {longest:g} seconds",
    )
    if draft.task_id and parse_id(draft.task_id) is None:
        violations.add("task_id", "must be a task id")
    if draft.sandbox_id and parse_id(draft.sandbox_id) is None:
        violations.add("sandbox_id", "must be a sandbox id")
    if draft.conversation_id and parse_id(draft.conversation_id) is None:
        violations.add("conversation_id", "must be a conversation id")
    violations.raise_if_any()
    return _Limits(max_steps, budget, seconds)


class RunStarts:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        providers: ProviderRegistry,
        profiles: AgentProfiles,
        hooks: Hooks,
        worker: RunWorker,
        own_keys: OwnKeysLookup = NO_OWN_KEY_LOOKUP,
    ) -> None:
        self._sessions = sessions
        self._own_keys = own_keys
        self._settings = settings
        self._providers = providers
        self._profiles = profiles
        self._hooks = hooks
        self._worker = worker
        self._shares = UserShares(hooks.limits, settings)

    async def _run_share(self, caller: Caller) -> int:
        """The caller's limit of active runs: runs_per_user unless an admin changed it."""
        return (await self._shares.limits_of(caller.user_id)).max_active_runs

    async def start(self, caller: Caller, draft: RunDraft) -> RunView:
        settings = self._settings
        limits = _limits(draft, settings)
        async with self._sessions() as db:
            project_id = await project_with_role(db, caller, draft.project_id, ProjectRole.EDITOR)
            agent = await self._profiles.find(db, project_id, draft.agent_id)
            if agent is None:
                raise agent_not_found()
            conversation_id = parse_id(draft.conversation_id) if draft.conversation_id else None
            if conversation_id is not None:
                await _check_conversation(db, project_id, conversation_id)
        model_id = draft.model or agent.model or self._providers.default_model
        own = await self._own_keys.for_call(caller.user_id, project_id, model=model_id)
        model = self._providers.resolve(model_id, field="model", own_keys=own)
        listed = {info.id: info for info in self._providers.models()}
        info = listed.get(model.id)
        if info is not None and not info.supports_tools:
            raise InvalidArgument.of(
                [FieldViolation("model", f"the model {model.id!r} cannot call tools")],
                reason=MODEL_WITHOUT_TOOLS,
            )
        task_id = parse_id(draft.task_id) if draft.task_id else None
        if task_id is not None:
            await self._hooks.task_board.get().get_task(caller, project_id, task_id)
        sandbox_id = parse_id(draft.sandbox_id) if draft.sandbox_id else None
        if sandbox_id is not None:
            # Checks that it is a live sandbox of this project the caller may use.
            await self._hooks.sandbox.get().ensure_sandbox(caller, project_id, sandbox_id)
        run_id = new_id()
        run_share = await self._run_share(caller)
        async with self._sessions() as db, db.begin():
            await _check_run_limit(db, caller.user_id, run_share)
            if conversation_id is None:
                conversation_id = await _new_conversation(
                    db, project_id, caller, agent.id, draft.goal, model.id
                )
            else:
                # Locked until the run row refers to it (a deletion waits for the run).
                await _check_conversation(db, project_id, conversation_id, lock=True)
            row = await store.insert_run(
                db,
                id=run_id,
                project_id=project_id,
                agent_id=agent.id,
                goal=draft.goal,
                task_id=task_id,
                conversation_id=conversation_id,
                model=model.id,
                status="queued",
                approval_mode=draft.approval_mode.value,
                sandbox_id=sandbox_id,
                max_steps=limits.max_steps,
                token_budget=limits.token_budget,
                time_limit_seconds=limits.time_limit_seconds,
                creator_id=caller.user_id,
                **leases.lease_values(self._worker.owner, settings.run_lease_seconds),
            )
            view = RunView.of(row)
            lease = Lease(run_id, int(row.lease_token))
        if task_id is not None:
            try:
                await self._hooks.task_board.get().attach_run(caller, project_id, task_id, run_id)
            except ForgeError as error:
                # Deleted in between: the run goes on without its task.
                log.warning("could not attach a run to its task", extra={"reason": error.reason})
        self._worker.adopt(lease)
        return view


async def _check_conversation(
    db: AsyncSession, project_id: uuid.UUID, conversation_id: uuid.UUID, *, lock: bool = False
) -> None:
    """NOT_FOUND unless the conversation is one of the run's project."""
    query = select(Conversation.project_id).where(Conversation.id == conversation_id)
    if lock:
        query = query.with_for_update(key_share=True)
    if await db.scalar(query) != project_id:
        raise conversation_not_found()


async def _new_conversation(
    db: AsyncSession, project_id: uuid.UUID, caller: Caller, agent_id: str, goal: str, model: str
) -> uuid.UUID:
    """A conversation for the run's transcript, titled like a chat's by the goal."""
    row = Conversation(
        id=new_id(),
        project_id=project_id,
        agent_id=agent_id,
        title=title_from(goal),
        model=model,
        message_count=0,
        creator_id=caller.user_id,
    )
    db.add(row)
    await db.flush()
    return row.id


async def _check_run_limit(db: AsyncSession, user_id: uuid.UUID, limit: int) -> None:
    """Refuses a run past the user's limit of active runs (serialised per user, so two
    concurrent starts cannot both take the last place)."""
    await db.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"runs:{user_id}"))))
    active = await store.count_active_runs(db, user_id)
    if active < limit:
        return
    raise quota_exceeded(
        limit="max_active_runs",
        user_id=user_id,
        allowed=limit,
        used=active,
        reason=RUN_LIMIT_REACHED,
        message=f"you already have {active} active runs, the most allowed; "
        "wait for one to end or cancel one",
        what="runs queued, running or waiting",
    )
