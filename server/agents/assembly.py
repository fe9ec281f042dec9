"""Builds AgentService from the server's settings and shared parts (see server/services.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents.chat import Chats
from server.agents.conversations import Conversations
from server.agents.hooks import AnswerListener
from server.agents.profiles import AgentProfiles
from server.agents.providers import ProviderRegistry
from server.agents.service import AgentService
from server.agents.usage import UsageLedger
from server.config import Settings
from server.core.pagination import PageTokens

SETTLE_GRACE_SECONDS = 5.0
"""At shutdown, how long answers still being stored may take."""


class AgentsLifecycle:
    """Closes the providers' connections at shutdown, once interrupted answers are stored."""

    def __init__(self, registry: ProviderRegistry, chats: Chats) -> None:
        self._registry = registry
        self._chats = chats

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self._chats.drain(SETTLE_GRACE_SECONDS)
        await self._registry.aclose()


@dataclass(frozen=True)
class AgentsAssembly:
    servicer: AgentService
    lifecycle: AgentsLifecycle


def build_agents(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    page_tokens: PageTokens,
    answer_listeners: Sequence[AnswerListener],
) -> AgentsAssembly:
    registry = ProviderRegistry(settings)
    profiles = AgentProfiles(sessions, registry)
    ledger = UsageLedger(sessions, settings.daily_token_quota)
    chats = Chats(
        sessions, registry, profiles, ledger, answer_listeners, settings.history_token_budget
    )
    servicer = AgentService(
        registry=registry,
        profiles=profiles,
        conversations=Conversations(sessions, registry, profiles),
        chats=chats,
        ledger=ledger,
        page_tokens=page_tokens,
        max_output_tokens=settings.provider_max_output_tokens,
    )
    return AgentsAssembly(servicer, AgentsLifecycle(registry, chats))
