"""Who does what on a Docker host, compared with the database clock only.

A Docker host's duties (reconciliation, reaper, warm pool, following container ends) are held
by one process at a time: the `sandbox_hosts` row whose `owner` is that process and whose
`lease_expires_at` is in the future; every takeover increments `lease_token`, and only the
token's holder renews. Executions are leased the same way, by the process relaying them (one
statement renews them all); once a process dies, its executions' leases expire and the
host's duty holder kills what they left and marks them lost (`reconcile.orphaned_executions`).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_CLAIM = text(
    """
    INSERT INTO sandbox_hosts AS h (id, owner, lease_token, lease_expires_at)
    VALUES (:host, :owner, 1, now() + make_interval(secs => :lease_seconds))
    ON CONFLICT (id) DO UPDATE
        SET owner = EXCLUDED.owner, lease_token = h.lease_token + 1,
            lease_expires_at = EXCLUDED.lease_expires_at, update_time = now()
        WHERE h.lease_expires_at IS NULL OR h.lease_expires_at < now()
           OR h.owner = EXCLUDED.owner
    RETURNING h.lease_token
    """
)

_RENEW = text(
    """
    UPDATE sandbox_hosts
    SET lease_expires_at = now() + make_interval(secs => :lease_seconds), update_time = now()
    WHERE id = :host AND owner = :owner AND lease_token = :token
    RETURNING lease_token
    """
)

_RELEASE = text(
    """
    UPDATE sandbox_hosts
    SET owner = NULL, lease_expires_at = now() - interval '1 second', update_time = now()
    WHERE id = :host AND owner = :owner AND lease_token = :token
    """
)

_RENEW_EXECUTIONS = text(
    """
    UPDATE sandbox_executions
    SET lease_expires_at = now() + make_interval(secs => :lease_seconds)
    WHERE owner = :owner AND state = 'running'
    """
)


async def claim_host(db: AsyncSession, host: str, owner: str, lease_seconds: float) -> int | None:
    """Takes the host's duties if nobody holds them (or their lease expired); the new lease
    token, or None."""
    params = {"host": host, "owner": owner, "lease_seconds": lease_seconds}
    token = (await db.execute(_CLAIM, params)).scalar_one_or_none()
    return int(token) if token is not None else None


async def renew_host(
    db: AsyncSession, host: str, owner: str, token: int, lease_seconds: float
) -> bool:
    """Extends the lease `token` of `owner`; False if it was taken over meanwhile."""
    params = {"host": host, "owner": owner, "token": token, "lease_seconds": lease_seconds}
    return (await db.execute(_RENEW, params)).first() is not None


async def release_host(db: AsyncSession, host: str, owner: str, token: int) -> None:
    """Gives the duties up (expired now), so another process may take them at once."""
    await db.execute(_RELEASE, {"host": host, "owner": owner, "token": token})


async def renew_executions(db: AsyncSession, owner: str, lease_seconds: float) -> None:
    """Extends the lease of every execution this process is relaying."""
    await db.execute(_RENEW_EXECUTIONS, {"owner": owner, "lease_seconds": lease_seconds})
