"""Builds AgentService: models, agent profiles, conversations, streaming chat, usage and
agent runs.

Offers the usage ledger (`UsageCharges`) to the other services; consumes the answer
listeners they offer, and the sandbox, artifact and task board ports (runs' tools)."""

from __future__ import annotations

from forge.agents.v1 import agents_pb2, agents_pb2_grpc

from server.agents import store
from server.agents.cancel_answer import AnswerCancels
from server.agents.catalog import ModelCatalog
from server.agents.chat import Chats
from server.agents.chat_retries import ChatRetries
from server.agents.conversations import Conversations
from server.agents.profiles import AgentProfiles
from server.agents.provider_key_use import ProviderKeyUse
from server.agents.provider_keys import ProviderKeys
from server.agents.providers import Providers, ProviderSwitchRefresh
from server.agents.records import AgentRecords
from server.agents.runs.build import build_runs
from server.agents.saver import AnswerSaver
from server.agents.service import AgentService
from server.agents.sweeper import AnswerSweeper
from server.agents.usage import UsageLedger
from server.core.admission import Admission
from server.core.binding import ServiceBinding
from server.core.hooks import Offers
from server.core.loop_load import LoopLoad
from server.core.metrics import current_metrics
from server.core.module import BuildContext, ServiceModule
from server.core.sealing import KeySealer
from server.core.tasks import TaskSupervisor
from server.llm import ProviderRegistry
from server.llm.keyed import KeyedProviders

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
    # Refuses to start (InsecureConfiguration) with malformed keys, or none in production.
    sealer = KeySealer.from_settings(settings, ctx.secret)
    keyed = KeyedProviders(settings)
    registry = ProviderRegistry(settings, keyed=keyed)
    provider_keys = ProviderKeys(sessions, sealer, keyed.provider_names)
    key_use = ProviderKeyUse(sessions, sealer)
    profiles = AgentProfiles(sessions, registry)
    ledger = UsageLedger(sessions, settings.daily_token_quota, prices=registry.catalog.prices)
    providers = Providers(sessions, registry)
    tasks = TaskSupervisor("chat")
    load = LoopLoad(settings.stream_busy_target, settings.stream_max_hold_ms / 1000)
    metrics = current_metrics()
    if metrics is not None:
        metrics.gauge(
            "forge_event_loop_busy_ratio",
            "share of a core the event loop's thread spent on the CPU (smoothed)",
            lambda: load.busy,
        )
        metrics.gauge(
            "forge_stream_hold_seconds",
            "how long chat streams hold each delta to send fewer, larger events while the "
            "event loop is over its load target; 0 while it keeps up",
            lambda: load.hold,
        )
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
        own_keys=key_use,
        summary_max_output_tokens=settings.summary_max_output_tokens,
        cancels=ctx.cancels,
        load=load,
    )
    runs = build_runs(ctx, registry, profiles, ledger, own_keys=key_use)
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
        provider_keys=provider_keys,
        key_use=key_use,
        models=ModelCatalog(sessions, registry, settings),
        providers=providers,
        answer_cancels=AnswerCancels(sessions, ctx.cancels),
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
                admitted={
                    "Chat": Admission(
                        "opening chats",
                        settings.chat_open_concurrency,
                        settings.chat_open_backlog,
                        settings.chat_open_max_wait_ms / 1000,
                        load,
                    )
                },
            )
        ],
        # Stopped in reverse order: runs hand over (their loops use the providers) before
        # the providers' connections close; answers still settling then are saved until
        # they are settled.
        background=[
            load,
            ProviderSwitchRefresh(providers, settings.provider_switch_cache_seconds),
            key_use,
            saver,
            sweeper,
            _ChatLifecycle(tasks, registry),
            *runs.background,
        ],
        offers=Offers(
            usage=ledger,
            system_counters=store.system_counters(),
            agent_records=AgentRecords(sessions),
            own_keys=key_use,
        ),
    )
