"""The one shape every service package has: `module.build(BuildContext) -> ServiceModule`.

`server/services.py` lists the builders; `server/app.py` builds them in order, installs
what they offer into the shared `Hooks`, binds their servicers and starts their background
work. Tests start servers through the same seam, adding modules of their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.core.binding import ServiceBinding
from server.core.cancels import Cancels
from server.core.credentials import Authenticator
from server.core.holds import Holds
from server.core.hooks import Hooks, Offers
from server.core.idempotency import IdempotencyStore
from server.core.pagination import PageTokens


class Background(Protocol):
    """Work a module runs beside its RPCs (senders, pools, reapers): started in module
    order before the server accepts calls, stopped in reverse order after it drained."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


SetServing = Callable[[bool], Awaitable[None]]
FollowHealth = Callable[[SetServing], None]
"""Given `set_serving`, a module calls it with True/False now and whenever its backend
(e.g. Docker) comes or goes; the health of the module's services follows it."""


@dataclass(frozen=True)
class BuildContext:
    """What every module is built from; one per server."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    secret: bytes
    """The server secret (signs access tokens; keys page tokens)."""
    page_tokens: PageTokens
    hooks: Hooks
    """Hooks and ports offered by the modules, filled once all are built."""
    idempotency: IdempotencyStore
    """Request ids (AIP-155), for servicers that replay their calls themselves."""
    cancels: Cancels
    """Stops requested from any process (server/core/cancels.py); started before the
    modules' background work, stopped after it."""
    holds: Holds
    """Places counted across every process (server/core/holds.py); started before the
    modules' background work, stopped after it."""


@dataclass(frozen=True)
class ServiceModule:
    name: str
    bindings: Sequence[ServiceBinding] = ()
    background: Sequence[Background] = ()
    offers: Offers = field(default_factory=Offers)
    health: FollowHealth | None = None
    """None: the module's services are SERVING whenever the process is."""
    authenticator: Authenticator | None = None
    """Offered by the one module that turns credentials into callers (auth)."""


ModuleBuilder = Callable[[BuildContext], ServiceModule]
