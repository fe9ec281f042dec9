"""Builds AgentService: models, agent profiles, conversations, streaming chat, usage and
agent runs.

Offers the usage ledger (`UsageCharges`) to the other services; consumes the answer
listeners they offer, and the sandbox, artifact and task board ports (runs' tools)."""

from __future__ import annotations

from forge.agents.v1 import agents_pb2, agents_pb2_grpc

from server.agents import store
from server.agents.chat import Chats
from server.agents.chat_retries import ChatRetries
from server.agents.conversations import Conversations
from server.agents.profiles import AgentProfiles
from server.agents.records import AgentRecords
from server.agents.runs.build import build_runs
from server.agents.saver import AnswerSaver
from server.agents.service import AgentService
from server.agents.sweeper import AnswerSweeper
from server.agents.usage import UsageLedger
from server.core.binding import ServiceBinding
from server.core.hooks import Offers
from server.core.module import BuildContext, ServiceModule
from server.core.tasks import TaskSupervisor
from server.llm import ProviderRegistry

SETTLE_GRACE_SECONDS = 5.0
"""At shutdown, how long answers still being stored may take."""


class _ChatLifecycle:
    """At shutdown: lets interrupted answers be stored, then closes the providers'
    connections."""

    def __init__(self, tasks: TaskSupervisor, registry: ProviderRegistry) -> None:
        self._tasks = tasks
        self._registry = registry

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        try:
            await self._tasks.drain(SETTLE_GRACE_SECONDS)
            await self._tasks.stop()
        finally:
            await self._registry.aclose()


def build(ctx: BuildContext) -> ServiceModule:
    settings, sessions = ctx.settings, ctx.sessions
    registry = ProviderRegistry(settings)
    profiles = AgentProfiles(sessions, registry)
    ledger = UsageLedger(sessions, settings.daily_token_quota)
    tasks = TaskSupervisor("chat")
    saver = AnswerSaver(
        sessions, settings.chat_save_interval_seconds, settings.chat_orphan_after_seconds
    )
    sweeper = AnswerSweeper(
        sessions, ledger, settings.chat_orphan_after_seconds, settings.chat_sweep_interval_seconds
    )
    chats = Chats(
        sessions,
        registry,
        profiles,
        ledger,
        ctx.hooks.answer_listeners,
        settings.history_token_budget,
        tasks,
        saver,
    )
    runs = build_runs(ctx, registry, profiles, ledger)
    servicer = AgentService(
        registry=registry,
        profiles=profiles,
        conversations=Conversations(sessions, registry, profiles),
        chats=chats,
        chat_retries=ChatRetries(chats, ctx.idempotency, settings.chat_save_interval_seconds),
        ledger=ledger,
        page_tokens=ctx.page_tokens,
        max_output_tokens=settings.provider_max_output_tokens,
        runs=runs,
    )
    return ServiceModule(
        name="agents",
        bindings=[
            ServiceBinding.of(
                agents_pb2,
                agents_pb2_grpc,
                "AgentService",
                servicer,
                replayed_by_servicer=["Chat"],
            )
        ],
        # Stopped in reverse order: runs hand over (their loops use the providers) before
        # the providers' connections close; answers still settling then are saved until
        # they are settled.
        background=[saver, sweeper, _ChatLifecycle(tasks, registry), *runs.background],
        offers=Offers(
            usage=ledger,
            system_counters=store.system_counters(),
            agent_records=AgentRecords(sessions),
        ),
    )
