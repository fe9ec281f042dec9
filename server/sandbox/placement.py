"""Which Docker host a new sandbox goes on: the answering engine with the most capacity left,
as the database records it (so every server process weighs the same sandboxes).

An engine's capacity is what `docker info` reports (memory, CPUs); what is left is that
minus the limits of the live sandboxes placed on it. The score is the smaller of the free
memory and free CPU fractions, so a host short of either is avoided; ties go to the host
with fewer sandboxes. CPU may be oversubscribed (shares), memory may not: a sandbox whose
memory no host has left is refused (RESOURCE_EXHAUSTED SANDBOX_HOSTS_FULL).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.sandbox_models import LIVE_SANDBOX_STATES, SandboxRow
from server.sandbox.engine import Engine
from server.sandbox.failures import backend_unavailable, hosts_full
from server.sandbox.limits import Limits


@dataclass(frozen=True)
class HostLoad:
    sandboxes: int = 0
    memory_bytes: int = 0
    cpu_millis: int = 0


async def loads(db: AsyncSession, host_ids: Sequence[str]) -> dict[str, HostLoad]:
    """What the live sandboxes on each host hold, by their recorded limits."""
    query = (
        select(
            SandboxRow.host_id,
            func.count(),
            func.coalesce(func.sum(SandboxRow.limits["memory_bytes"].as_integer()), 0),
            func.coalesce(func.sum(SandboxRow.limits["cpu_millis"].as_integer()), 0),
        )
        .where(SandboxRow.host_id.in_(list(host_ids)), SandboxRow.state.in_(LIVE_SANDBOX_STATES))
        .group_by(SandboxRow.host_id)
    )
    return {
        str(host): HostLoad(int(count), int(memory), int(cpu))
        for host, count, memory, cpu in await db.execute(query)
    }


def _free_fraction(total: int, used: int) -> float:
    return (total - used) / total if total > 0 else 1.0


def choose(candidates: Sequence[Engine], load: dict[str, HostLoad], limits: Limits) -> Engine:
    """The engine for a sandbox with `limits` among `candidates` (answering engines)."""
    if not candidates:
        raise backend_unavailable()

    def roomy(engine: Engine) -> bool:
        total = engine.description.memory_bytes
        used = load.get(engine.host_id, HostLoad()).memory_bytes
        return total <= 0 or total - used >= limits.memory_bytes

    fitting = [engine for engine in candidates if roomy(engine)]
    if not fitting:
        raise hosts_full(limits.memory_bytes)

    def rank(engine: Engine) -> tuple[float, int, str]:
        held = load.get(engine.host_id, HostLoad())
        described = engine.description
        score = min(
            _free_fraction(described.memory_bytes, held.memory_bytes),
            _free_fraction(described.cpu_millis, held.cpu_millis),
        )
        return (-score, held.sandboxes, engine.host_id)

    return min(fitting, key=rank)


async def place(db: AsyncSession, candidates: Sequence[Engine], limits: Limits) -> Engine:
    if not candidates:
        raise backend_unavailable()
    load = await loads(db, [engine.host_id for engine in candidates])
    return choose(candidates, load, limits)
