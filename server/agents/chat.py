"""Chat: one user message in, one streamed assistant answer out.

`Chats.open` checks access and quota, stores the user message and an IN_PROGRESS assistant
message, and plans the provider request (history trimmed to the token budget, newest turns
kept). `ChatTurn.events()` then yields `ChatStarted`, the provider's `TextDelta`s as they
arrive (those that arrive while the previous event is still being sent go out as one,
llm/coalesce.py; nothing is written per delta: about once per `chat_save_interval_seconds` the
stream hands its text so far to the saver, which stores it off the stream), and at the end
`ChatUsage`, one `ChatArtifact` per artifact the answer listeners produced, and
`ChatCompleted`; or, when the provider fails, raises its `ForgeError` (which the servicer's
stream turns into a last `error` event).

Whatever ends the stream, the answer is settled exactly once: `complete`, `failed` (with
the error) or `cancelled` (the client went away or its deadline passed, or CancelAnswer
stopped it from any process: the provider stream is closed at once; cancel_stream.py).
Settling runs in a task of Chat's supervisor that the caller's cancellation cannot
interrupt, so the partial text is never lost. When the server itself
dies, a sweeper (of any server, the restarted one included) settles the answer as
`interrupted` with its saved text (sweeper.py).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from types import AsyncGeneratorType

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents import charges, compaction, store
from server.agents.access import chat_target
from server.agents.cancel_stream import answer_stops
from server.agents.compaction import NO_HISTORY, ChatCompaction
from server.agents.generation import GenerationParams
from server.agents.profiles import AgentProfiles
from server.agents.saver import AnswerSaver
from server.agents.usage import UsageLedger
from server.agents.views import (
    AgentView,
    ChatArtifact,
    ChatCompleted,
    ChatEvent,
    ChatStarted,
    ChatSummary,
    ChatUsage,
    MessageView,
)
from server.core.access import ProjectRole
from server.core.cancels import Cancels
from server.core.context import Caller
from server.core.errors import (
    Cancelled,
    FieldViolation,
    ForgeError,
    InvalidArgument,
    Unavailable,
    error_document,
)
from server.core.hooks import AnswerListener, CompletedAnswer
from server.core.ids import new_id
from server.core.loop_load import NO_LOAD, LoopLoad
from server.core.metrics import answer_meter
from server.core.tasks import TaskSupervisor
from server.db.engine import reading
from server.llm import (
    ChatProvider,
    ChatRequest,
    Finish,
    ProviderRegistry,
    ProviderStreamError,
    TextDelta,
    Usage,
    estimate_tokens,
)
from server.llm.coalesce import coalesced
from server.llm.errors import UNAVAILABLE as PROVIDER_UNAVAILABLE
from server.llm.own_keys import NO_OWN_KEY_LOOKUP, OwnKeysLookup

log = logging.getLogger(__name__)

MAX_CONTENT_CHARS = 200_000
HISTORY_MESSAGES = 400
"""Newest messages read before trimming to the token budget."""
TITLE_CHARS = 80
NO_PARAMS = GenerationParams()


def title_from(content: str) -> str:
    first_line = next((line.strip() for line in content.splitlines() if line.strip()), "")
    if len(first_line) <= TITLE_CHARS:
        return first_line
    return first_line[: TITLE_CHARS - 1].rstrip() + "…"


@dataclass(frozen=True, slots=True)
class _Turn:
    """What one answer is about, fixed when the chat opens."""

    project_id: uuid.UUID
    conversation_id: uuid.UUID
    user_id: uuid.UUID
    user_message_id: uuid.UUID
    assistant_message_id: uuid.UUID
    model: str
    provider: ChatProvider
    request: ChatRequest
    estimated_input_tokens: int
    summary: MessageView | None = None
    """The summary stored for this answer (compaction.py), sent before `ChatStarted`."""


class Chats:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        registry: ProviderRegistry,
        profiles: AgentProfiles,
        ledger: UsageLedger,
        listeners: Sequence[AnswerListener],
        history_token_budget: int,
        tasks: TaskSupervisor,
        saver: AnswerSaver,
        own_keys: OwnKeysLookup = NO_OWN_KEY_LOOKUP,
        summary_max_output_tokens: int = 1024,
        cancels: Cancels | None = None,
        load: LoopLoad = NO_LOAD,
    ) -> None:
        self._sessions = sessions
        self.load = load
        """This process's loop load: answers hold their deltas while it is over target."""
        self.cancels = cancels
        """Where CancelAnswer's requests reach the answers streamed here (cancel_stream.py)."""
        self.sessions = sessions
        self._registry = registry
        self._own_keys = own_keys
        """Callers' and projects' own provider keys, preferred to the server's."""
        self._profiles = profiles
        self._ledger = ledger
        # The list itself, not a copy: other services register listeners while wiring.
        self._listeners = listeners
        self._compaction = ChatCompaction(history_token_budget, summary_max_output_tokens)
        self.saver = saver
        self.tasks = tasks
        """Work a cancelled caller must not interrupt (opening and settling answers). Its
        failures are not logged again: they reach whoever awaits them, or `settle` logs."""

    # --- opening a chat --------------------------------------------------------------------

    async def open(
        self,
        caller: Caller,
        conversation_id: str,
        content: str,
        model: str,
        params: GenerationParams = NO_PARAMS,
    ) -> ChatTurn:
        violations: list[FieldViolation] = []
        if not content.strip():
            violations.append(FieldViolation("content", "is required"))
        elif len(content) > MAX_CONTENT_CHARS:
            violations.append(
                FieldViolation("content", f"must be at most {MAX_CONTENT_CHARS} characters")
            )
        elif "\x00" in content:
            violations.append(FieldViolation("content", "must not contain NUL characters"))
        if violations:
            raise InvalidArgument.of(violations)
        opening = self.tasks.spawn(
            self._open(caller, conversation_id, content, model, params),
            name="open",
            log_failure=False,
        )
        try:
            turn = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # Gone before the answer started: once stored, it is settled as cancelled.
            opening.add_done_callback(self._settle_if_opened)
            raise
        return ChatTurn(self, turn)

    async def _open(
        self,
        caller: Caller,
        conversation_id: str,
        content: str,
        model: str,
        params: GenerationParams,
    ) -> _Turn:
        """Checks and plans the answer, and stores both messages (one statement).

        No transaction: the read that checks access and the write are single statements,
        and nothing read here needs to stay as it was until the write (a conversation deleted
        in between takes its new messages with it)."""
        user_id = caller.user_id
        conversation = await chat_target(
            self._sessions, caller, conversation_id, ProjectRole.EDITOR
        )
        agent: AgentView | None = None
        earlier = NO_HISTORY
        if conversation.agent_id or conversation.message_count or self._ledger.has_quota:
            async with reading(self._sessions) as db:
                if conversation.agent_id:
                    agent = await self._profiles.find(
                        db, conversation.project_id, conversation.agent_id
                    )
                await self._ledger.check_quota(db, user_id)
                if conversation.message_count:
                    earlier = await store.recent_turns(db, conversation.id, HISTORY_MESSAGES)
        chosen = (
            model or conversation.model or (agent.model if agent else "")
        ) or self._registry.default_model
        own = await self._own_keys.for_call(user_id, conversation.project_id, model=chosen)
        resolved = self._registry.resolve(chosen, field="model", own_keys=own)
        self._own_keys.used(resolved.own_key_id)
        system = agent.system_prompt if agent else ""
        planned = await self._compaction.plan(resolved, system, earlier, content)
        turn = _Turn(
            project_id=conversation.project_id,
            conversation_id=conversation.id,
            user_id=user_id,
            user_message_id=new_id(),
            assistant_message_id=new_id(),
            model=resolved.id,
            provider=resolved.provider,
            request=ChatRequest(
                model=resolved.name,
                messages=planned.messages,
                system=planned.system,
                max_tokens=params.max_output_tokens
                or (agent.max_output_tokens if agent else 0)
                or None,
                temperature=params.temperature
                if params.temperature is not None
                else (agent.temperature if agent else None),
                top_p=params.top_p
                if params.top_p is not None
                else (agent.top_p if agent else None),
                stop_sequences=params.stop_sequences or (agent.stop_sequences if agent else ()),
            ),
            estimated_input_tokens=planned.estimated_tokens,
        )
        summary = await compaction.add_turn(
            self._sessions,
            self._ledger,
            planned,
            conversation.id,
            user_message_id=turn.user_message_id,
            assistant_message_id=turn.assistant_message_id,
            user_id=user_id,
            content=content,
            model=turn.model,
            title="" if conversation.title else title_from(content),
        )
        return turn if summary is None else replace(turn, summary=summary)

    def _settle_if_opened(self, opening: asyncio.Task[_Turn]) -> None:
        if not opening.cancelled() and opening.exception() is None:
            self.spawn_settle(opening.result(), "", "cancelled", Usage(), None)

    # --- ending an answer ------------------------------------------------------------------

    def spawn_settle(
        self, turn: _Turn, text: str, status: str, usage: Usage, error: ForgeError | None
    ) -> None:
        """Settles an answer that did not finish, in a task of its own (the caller is gone)."""
        self.tasks.spawn(
            self.settle(turn, text, status, None, usage, error), name="settle", log_failure=False
        )

    async def settle(
        self,
        turn: _Turn,
        text: str,
        status: str,
        finish_reason: str | None,
        usage: Usage,
        error: ForgeError | None,
    ) -> None:
        """Stores how the answer ended, and charges its tokens to the user (one statement).
        (Should that fail, the answer stays in progress, and the sweeper settles it later
        with its saved text.)"""
        self.saver.forget(turn.assistant_message_id)
        try:
            await charges.settle_answer(
                self._sessions,
                turn.assistant_message_id,
                content=text.replace("\x00", ""),
                status=status,
                finish_reason=finish_reason,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                error=error_document(error) if error is not None else None,
                charge=self._ledger.charge(turn.user_id, turn.model, usage),
            )
        except Exception:
            log.exception(
                "could not store the end of an answer",
                extra={"message_id": str(turn.assistant_message_id), "status": status},
            )
            raise

    async def notify(self, turn: _Turn, text: str) -> list[Message]:
        """Runs the answer listeners; returns the artifacts they produced (contract
        messages, passed through; only their `id` is kept with the answer)."""
        answer = CompletedAnswer(
            project_id=turn.project_id,
            conversation_id=turn.conversation_id,
            message_id=turn.assistant_message_id,
            user_id=turn.user_id,
            text=text,
        )
        artifacts: list[Message] = []
        for listener in list(self._listeners):
            try:
                artifacts.extend(await listener.answer_completed(answer))
            except Exception:
                # The answer itself is complete and stored; a listener's failure is its own.
                log.exception("an answer listener failed", extra={"listener": repr(listener)})
        ids = [str(key) for artifact in artifacts if (key := getattr(artifact, "id", ""))]
        if ids:
            async with self._sessions() as db, db.begin():
                await store.settle_message(db, turn.assistant_message_id, artifact_ids=ids)
        return artifacts


class ChatTurn:
    """One answer being streamed: iterate `events()` once, and call `call_ended()` when the
    RPC is over."""

    def __init__(self, chats: Chats, turn: _Turn) -> None:
        self._chats = chats
        self._turn = turn
        self._stream: AsyncGeneratorType[ChatEvent, None] | None = None
        self._settled = False
        self._live = chats.saver.track(turn.assistant_message_id, turn.estimated_input_tokens)

    def events(self) -> AsyncGenerator[ChatEvent, None]:
        stream = self._events()
        assert isinstance(stream, AsyncGeneratorType)
        self._stream = stream
        return stream

    def call_ended(self) -> None:
        """The RPC is over. An answer cut short is stopped and settled now, rather than
        whenever its abandoned generator is finalised: when the cancellation reached the
        transport instead of this generator's await, the generator is left suspended at a
        `yield`. (While it is inside an await, its own task's cancellation reaches it.)"""
        stream = self._stream
        if stream is not None and not self._settled and not stream.ag_running:
            self._chats.tasks.spawn(self._close(stream), name="close", log_failure=False)

    def abandon(self) -> None:
        """The caller went before streaming began: the answer is settled as cancelled."""
        if self._stream is None and not self._settled:
            self._settled = True
            self._chats.spawn_settle(self._turn, "", "cancelled", Usage(), None)

    async def _close(self, stream: AsyncGenerator[ChatEvent, None]) -> None:
        await stream.aclose()
        if not self._settled:  # closed before it ever ran
            self._settled = True
            await self._chats.settle(self._turn, "", "cancelled", None, Usage(), None)

    @property
    def started(self) -> ChatStarted:
        turn = self._turn
        return ChatStarted(turn.user_message_id, turn.assistant_message_id, turn.model)

    async def _events(self) -> AsyncGenerator[ChatEvent, None]:
        chats = self._chats
        turn = self._turn
        # One growing string rather than a list of parts: CPython extends it in place, and
        # a long answer costs its length in memory, not ~60 bytes more per delta.
        text = ""
        live = self._live  # asked for the text so far about once per save interval
        outcome: Finish | ForgeError | None = None
        try:
            if turn.summary is not None:
                yield ChatSummary(turn.summary)
            yield self.started
            meter = answer_meter("chat", turn.model)
            async with aclosing(
                coalesced(
                    turn.provider.stream(turn.request),
                    chats.load,
                    answer_stops(chats.cancels, turn.assistant_message_id),
                )
            ) as stream:
                async for event in stream:
                    if type(event) is TextDelta:
                        text += event.text
                        if meter is not None:
                            meter.text(event.text)
                        if live.due:
                            live.post(text)
                        yield event
                    elif type(event) is Finish:
                        outcome = event
                    # Chats offer the model no tools, so a ToolCallRequest is not expected.
        except ProviderStreamError as failure:
            outcome = failure.error
        except ForgeError as failure:
            outcome = failure
        except BaseException as stopped:
            # The client cancelled, its deadline passed, or a bug: keep what was produced.
            self._settled = True
            status = (
                "cancelled"
                if isinstance(stopped, asyncio.CancelledError | GeneratorExit)
                else "failed"
            )
            bug = None if status == "cancelled" else ForgeError("the answer failed", "INTERNAL")
            usage = Usage(turn.estimated_input_tokens, estimate_tokens(text)) if text else Usage()
            chats.spawn_settle(turn, text, status, usage, bug)
            raise
        self._settled = True
        if isinstance(outcome, Finish):
            await chats.tasks.shielded(
                chats.settle(turn, text, "complete", outcome.reason, outcome.usage, None),
                name="settle",
            )
            yield ChatUsage(outcome.usage)
            for artifact in await chats.tasks.shielded(chats.notify(turn, text), name="notify"):
                yield ChatArtifact(artifact)
            yield ChatCompleted(outcome.reason)
            return
        error = outcome or Unavailable(
            "the model ended its answer without finishing it", PROVIDER_UNAVAILABLE
        )
        usage = Usage(turn.estimated_input_tokens, estimate_tokens(text)) if text else Usage()
        if isinstance(error, Cancelled):  # CancelAnswer, from any process: kept as cancelled
            settling = chats.settle(turn, text, "cancelled", None, usage, None)
        else:
            settling = chats.settle(turn, text, "failed", None, usage, error)
        await chats.tasks.shielded(settling, name="settle")
        raise error
