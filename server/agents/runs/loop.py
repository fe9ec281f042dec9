"""The loop of one run, run by the process holding its lease (worker.py), in one task.

It rebuilds the run's state from its log (transcript.py), recovers what a dead owner left
half done (a tool call in flight is answered as interrupted; a model turn cut mid-stream is
asked again), then repeats: check the cancel flag and the budgets, record steering
messages, ask the model (its text stored in small batches, its tool calls and usage at the
end of the turn, the tokens charged to the user like chat), and run the calls one at a
time — stopping to wait when one needs approval. `finish`, or a turn without tool calls,
completes the run and moves its task to review.

The task is cancelled by the worker with a `stop_reason`: CANCEL (CancelRun: the model
stream and the running tool stop at once, then Completed(CANCELLED) is written), HANDOVER
(SIGTERM: the text held is flushed and the lease released for another process) or
LEASE_LOST (another process owns the run now: nothing more is written).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents.profiles import AgentProfiles
from server.agents.runs import leases, store
from server.agents.runs.compaction import compact, run_request
from server.agents.runs.events import (
    ApprovalGiven,
    Completed,
    Failed,
    RunStatus,
    StatusChanged,
    ToolAnswered,
    ToolCalled,
    TurnUsage,
    UserSteered,
)
from server.agents.runs.log import EventLog, LeaseLost
from server.agents.runs.mirror import TranscriptMirror
from server.agents.runs.tools import ToolContext, ToolInputError, ToolOutcome, ToolRegistry
from server.agents.runs.transcript import Transcript, rebuild
from server.agents.runs.turns import ask_model, charge_turn, needs_approval, time_up
from server.agents.runs.views import RunView
from server.agents.runs.writer import EventWriter
from server.agents.usage import UsageLedger
from server.agents.views import AgentView
from server.config import Settings
from server.core.context import Caller
from server.core.errors import ForgeError, NotFound, PermissionDenied, ResourceExhausted
from server.core.hooks import Hooks
from server.llm import ProviderRegistry, ResolvedModel, Usage
from server.llm.own_keys import NO_OWN_KEY_LOOKUP, OwnKeysLookup

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted by a server restart; it may or may not have taken effect"
TOOL_CANCELLED = "stopped: the run was cancelled while this tool ran"
TOOL_TIMED_OUT = "stopped: the run reached its time limit while this tool ran"
STEP_BUDGET_EXHAUSTED = "RUN_STEP_BUDGET_EXHAUSTED"
TOKEN_BUDGET_EXHAUSTED = "RUN_TOKEN_BUDGET_EXHAUSTED"  # noqa: S105 - a reason, not a secret
AGENT_GONE = "RUN_AGENT_NOT_FOUND"
CREATOR_GONE = "RUN_CREATOR_NOT_FOUND"
CREATOR_DISABLED = "RUN_CREATOR_DISABLED"
INTERNAL = "RUN_INTERNAL_ERROR"


class StopReason(Enum):
    CANCEL = "cancel"
    HANDOVER = "handover"
    LEASE_LOST = "lease_lost"


class _Stop(Exception):
    """The loop is done for now: the run ended, or it waits for approval."""


@dataclass(frozen=True)
class LoopDeps:
    sessions: async_sessionmaker[AsyncSession]
    log: EventLog
    tools: ToolRegistry
    providers: ProviderRegistry
    profiles: AgentProfiles
    ledger: UsageLedger
    hooks: Hooks
    settings: Settings
    own_keys: OwnKeysLookup = NO_OWN_KEY_LOOKUP
    """The creator's and the project's own provider keys, preferred to the server's."""


class RunLoop:
    def __init__(self, deps: LoopDeps, run_id: uuid.UUID, lease_token: int) -> None:
        self._deps = deps
        self.run_id = run_id
        self.lease_token = lease_token
        self.stop_reason: StopReason | None = None
        """Set by the worker before it cancels the loop's task."""
        self._writer: EventWriter | None = None
        self._in_tool: ToolCalled | None = None
        self._sandbox_id: uuid.UUID | None = None
        self._deadline = 0.0
        """Event-loop time at which the run's time limit passes."""

    # --- the task ----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            if self.stop_reason in (StopReason.CANCEL, StopReason.HANDOVER):
                await asyncio.shield(self._stopped(self.stop_reason))
            raise
        except (_Stop, LeaseLost):
            return
        except ForgeError as error:
            await self._fail(error)
        except Exception:
            log.exception("a run's loop failed", extra={"run_id": str(self.run_id)})
            await self._fail(ForgeError("the run failed because of a server error", INTERNAL))
        finally:
            if self._writer is not None:
                await self._writer.close()

    async def _stopped(self, reason: StopReason) -> None:
        writer = self._writer
        if writer is None:
            return
        try:
            if reason is StopReason.HANDOVER:
                await writer.flush()
                return
            await self._end_cancelled()
        except LeaseLost:
            pass
        except Exception:
            log.exception("could not record how a run stopped", extra={"run_id": str(self.run_id)})

    async def _fail(self, error: ForgeError) -> None:
        writer = self._writer
        if writer is None:
            return
        event = Failed(error.code.value, error.reason, error.message, dict(error.metadata))
        try:
            await writer.emit(event)
        except LeaseLost:
            pass
        except Exception:
            log.exception("could not record a run's failure", extra={"run_id": str(self.run_id)})

    # --- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        deps = self._deps
        view, _ = await self._refresh()
        if view.status.ended:
            return
        self._view = view
        transcript = rebuild(view.goal, await self._read_log())
        self._writer = EventWriter(
            deps.log,
            self.run_id,
            self.lease_token,
            deps.settings.run_delta_flush_ms / 1000,
            transcript,
            TranscriptMirror(view.creator_id, view.model),
        )
        if transcript.ended:
            return
        self._t = transcript
        self._agent, self._model = await self._prepare(view)
        await self._recover(view)
        while True:
            view, now = await self._refresh()
            self._view = view
            if view.cancel_requested:
                await self._end_cancelled()
                return
            pending = transcript.unanswered()
            if pending:
                await self._dispatch(pending[0])
                continue
            final = transcript.final_text()
            if final is not None:
                await self._succeed(final)
                return
            self._check_budgets(view, now)
            if view.inbox:
                await self._emit(
                    *(
                        UserSteered(str(m.get("content", "")), str(m.get("author_user_id", "")))
                        for m in view.inbox
                    )
                )
            await self._turn(view)

    async def _refresh(self) -> tuple[RunView, datetime]:
        async with self._deps.sessions() as db:
            row, now = await leases.run_and_now(db, self.run_id)
            if row is None or row.lease_token != self.lease_token:
                raise LeaseLost(self.run_id, self.lease_token)
            view = RunView.of(row)
        elapsed = (now - view.start_time) if view.start_time is not None else timedelta()
        remaining = (view.time_limit - elapsed).total_seconds()
        self._deadline = asyncio.get_running_loop().time() + remaining
        return view, now

    async def _read_log(self) -> list[tuple[int, Any]]:
        events: list[tuple[int, Any]] = []
        after = 0
        while True:
            page = await self._deps.log.read(self.run_id, after)
            events.extend((item.seq, item.event) for item in page)
            if not page:
                return events
            after = page[-1].seq

    async def _prepare(self, view: RunView) -> tuple[AgentView, ResolvedModel]:
        deps = self._deps
        if view.creator_id is None:
            raise NotFound("the user who started the run no longer exists", CREATOR_GONE)
        async with deps.sessions() as db:
            account = await store.creator_account(db, view.creator_id)
            agent = await deps.profiles.find(db, view.project_id, view.agent_id)
        if account is None:
            raise NotFound("the user who started the run no longer exists", CREATOR_GONE)
        role, disabled = account
        if disabled:
            raise PermissionDenied("the account that started the run is disabled", CREATOR_DISABLED)
        # The run acts as its creator, with the creator's role today (an admin acts as owner).
        self._caller = Caller(user_id=view.creator_id, roles=frozenset({role}))
        if agent is None:
            raise NotFound(f"the agent profile {view.agent_id!r} no longer exists", AGENT_GONE)
        own = await deps.own_keys.for_call(view.creator_id, view.project_id, model=view.model)
        model = deps.providers.resolve(view.model, own_keys=own)
        deps.own_keys.used(model.own_key_id)
        self._specs = deps.tools.specs(agent.tools)
        return agent, model

    async def _recover(self, view: RunView) -> None:
        """What the previous owner left: a call waiting for the decision just made, or a
        call in flight (answered as interrupted; the model decides whether to retry)."""
        pending = self._t.unanswered()
        if not pending:
            return
        call = pending[0]
        if self._t.waiting_for == call.id:
            decision = view.approval
            if not decision or decision.get("tool_call_id") != call.id:
                raise _Stop  # still waiting: nothing to do until an editor decides
            await self._emit(
                ApprovalGiven(
                    call.id,
                    bool(decision.get("approved")),
                    str(decision.get("reason", "")),
                    str(decision.get("user_id", "")),
                ),
                StatusChanged(RunStatus.RUNNING, "resumed after approval"),
            )
            return
        if call.id in self._t.approvals and not self._t.approvals[call.id].approved:
            return  # denied: _dispatch answers it
        await self._emit(ToolAnswered(call.id, call.name, INTERRUPTED, is_error=True))

    def _check_budgets(self, view: RunView, now: datetime) -> None:
        t = self._t
        if t.steps >= view.max_steps:
            raise ResourceExhausted(
                f"the run used all of its {view.max_steps} steps without finishing",
                STEP_BUDGET_EXHAUSTED,
                metadata={"max_steps": str(view.max_steps), "steps": str(t.steps)},
            )
        if t.total_tokens >= view.token_budget:
            raise ResourceExhausted(
                f"the run used {t.total_tokens} of its {view.token_budget} tokens",
                TOKEN_BUDGET_EXHAUSTED,
                metadata={"token_budget": str(view.token_budget), "tokens": str(t.total_tokens)},
            )
        if self._deadline <= asyncio.get_running_loop().time():
            raise time_up(view.time_limit)

    # --- a model turn ------------------------------------------------------------------------

    async def _turn(self, view: RunView) -> None:
        deps, t, agent = self._deps, self._t, self._agent
        step = t.steps + 1
        message = "model turn restarted" if t.turn_cut else f"step {step} of {view.max_steps}"
        if deps.ledger.has_quota:
            async with deps.sessions() as db:
                await deps.ledger.check_quota(db, self._caller.user_id)
        left_out = await compact(
            self._model, t, agent, deps.settings, self._deadline, self._emit_one, self._charge
        )
        await self._emit(StatusChanged(RunStatus.RUNNING, message, step=step))
        request = run_request(t, agent, self._model, self._specs, left_out)
        writer = self._require_writer()
        calls, usage = await ask_model(
            self._model, request, writer.delta, self._deadline, step, view.time_limit
        )
        await self._emit(*calls, TurnUsage(usage.input_tokens, usage.output_tokens))
        await self._charge(usage)

    async def _charge(self, usage: Usage) -> None:
        charge = self._deps.ledger.charge(self._caller.user_id, self._model.id, usage)
        if charge is not None:
            await charge_turn(self._deps.sessions, charge)

    # --- tool calls ----------------------------------------------------------------------------

    async def _dispatch(self, call: ToolCalled) -> None:
        """Runs one stored call of the newest turn, or stops the loop to wait for approval."""
        deps = self._deps
        approval = self._t.approvals.get(call.id)
        if approval is not None and not approval.approved:
            reason = f": {approval.reason}" if approval.reason else ""
            denial = f"the user denied this {call.name} call{reason}"
            await self._emit(ToolAnswered(call.id, call.name, denial, is_error=True))
            return
        try:
            if call.name not in self._agent.tools:
                allowed = ", ".join(self._agent.tools) or "none"
                raise ToolInputError(f"the tool {call.name!r} is not available; yours: {allowed}")
            args = deps.tools.parse(call.name, call.arguments)
        except ToolInputError as error:
            await self._emit(ToolAnswered(call.id, call.name, error.message, is_error=True))
            return
        if approval is None and needs_approval(
            self._view.approval_mode, deps.tools, call.name, args
        ):
            await self._emit(
                StatusChanged(
                    RunStatus.WAITING_FOR_APPROVAL,
                    f"waiting for approval of {call.name}",
                    tool_call_id=call.id,
                )
            )
            raise _Stop
        outcome = await self._execute(call, args)
        await self._emit(
            ToolAnswered(call.id, call.name, self._clip(outcome.content), outcome.is_error)
        )
        if outcome.final_answer is not None:
            await self._succeed(outcome.final_answer)
            raise _Stop

    async def _execute(self, call: ToolCalled, args: dict[str, Any]) -> ToolOutcome:
        deps = self._deps
        view = self._view
        ctx = ToolContext(
            caller=self._caller,
            project_id=view.project_id,
            run_id=self.run_id,
            task_id=view.task_id,
            sandbox=self._sandbox,
            ports=deps.hooks,
            emit=self._emit_one,
            settings=deps.settings,
        )
        self._in_tool = call
        try:
            async with asyncio.timeout_at(self._deadline) as scope:
                outcome = await deps.tools.run(ctx, call.name, args)
        except LeaseLost:
            raise
        except TimeoutError:
            if not scope.expired():
                raise
            await self._emit(ToolAnswered(call.id, call.name, TOOL_TIMED_OUT, is_error=True))
            raise time_up(view.time_limit) from None
        except ForgeError as error:
            outcome = ToolOutcome(f"{call.name} failed ({error.reason}): {error.message}", True)
        except Exception:
            log.exception(
                "a run tool failed", extra={"run_id": str(self.run_id), "tool": call.name}
            )
            outcome = ToolOutcome(f"{call.name} failed because of a server error", True)
        self._in_tool = None
        return outcome

    async def _sandbox(self) -> uuid.UUID:
        """The run's sandbox, created (or resumed) on first use and recorded on the run."""
        if self._sandbox_id is not None:
            return self._sandbox_id
        deps, view = self._deps, self._view
        sandbox_id = await deps.hooks.sandbox.get().ensure_sandbox(
            self._caller, view.project_id, view.sandbox_id
        )
        if sandbox_id != view.sandbox_id:
            async with deps.sessions() as db, db.begin():
                if not await store.set_sandbox(db, self.run_id, self.lease_token, sandbox_id):
                    raise LeaseLost(self.run_id, self.lease_token)
        self._sandbox_id = sandbox_id
        return sandbox_id

    def _clip(self, content: str) -> str:
        limit = self._deps.settings.run_tool_output_chars
        if len(content) <= limit:
            return content
        cut = len(content) - limit
        return content[:limit] + f"\n… ({cut} more characters not shown)"

    # --- ending ----------------------------------------------------------------------------------

    async def _succeed(self, result: str) -> None:
        view, t = self._view, self._t
        if view.task_id is not None:
            try:
                await self._deps.hooks.task_board.get().move_task(
                    self._caller, view.project_id, view.task_id, "review"
                )
            except ForgeError as error:
                log.warning(
                    "could not move a run's task to review",
                    extra={"run_id": str(self.run_id), "reason": error.reason},
                )
        await self._emit(Completed(RunStatus.SUCCEEDED, result, t.input_tokens, t.output_tokens))

    async def _end_cancelled(self) -> None:
        call, t = self._in_tool, self._require_writer().transcript
        events: list[Any] = []
        if call is not None:
            events.append(ToolAnswered(call.id, call.name, TOOL_CANCELLED, is_error=True))
        events.append(Completed(RunStatus.CANCELLED, "", t.input_tokens, t.output_tokens))
        await self._emit(*events)

    # --- writing -------------------------------------------------------------------------------

    def _require_writer(self) -> EventWriter:
        assert self._writer is not None
        return self._writer

    async def _emit(self, *events: Any) -> None:
        await self._require_writer().emit(*events)

    async def _emit_one(self, event: Any) -> None:
        await self._require_writer().emit(event)

    @property
    def transcript(self) -> Transcript | None:
        return self._writer.transcript if self._writer is not None else None
