"""Using stored provider keys: the keys that apply to one call, when each was last used, and
re-sealing keys under the current key-encryption key.

For a call by a user in a project, the project's key for a provider comes first, else the
user's own (`OwnKeys`). Keys are read and opened per call (one indexed query; nothing is
cached), and never logged. A key's `last_use_time` is written off the request path, at most
once a minute per key and process.

At start, keys sealed with an older key-encryption key (one that is configured but not the
first) are sealed again with the first: after a rotation, restarting every server is enough
before the old key can be removed (docs/provider-keys.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from pydantic import SecretStr
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents.key_binding import RowBinding
from server.core.access import ProjectRole, project_not_found, require_project_role
from server.core.context import Caller
from server.core.ids import parse_id
from server.core.sealing import KeySealer, KeyUnavailable, Sealed
from server.db.engine import reading
from server.db.provider_key_models import ProviderKeyRow
from server.llm.echo import ECHO
from server.llm.own_keys import (
    NO_OWN_KEYS,
    KeySource,
    OwnKey,
    OwnKeys,
)

log = logging.getLogger(__name__)

TOUCH_INTERVAL_SECONDS = 60.0
REKEY_BATCH = 200


def _binding(row: ProviderKeyRow) -> RowBinding:
    return RowBinding(row.id, row.user_id, row.project_id, row.provider)


class ProviderKeyUse:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], sealer: KeySealer) -> None:
        self._sessions = sessions
        self._sealer = sealer
        self._touched: dict[uuid.UUID, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def for_call(
        self, user_id: uuid.UUID, project_id: uuid.UUID | None, *, model: str = ""
    ) -> OwnKeys:
        if model == ECHO:
            return NO_OWN_KEYS  # the offline model takes no key: no query
        owners = [ProviderKeyRow.user_id == user_id]
        if project_id is not None:
            owners.append(ProviderKeyRow.project_id == project_id)
        async with reading(self._sessions) as db:
            rows = (await db.scalars(select(ProviderKeyRow).where(or_(*owners)))).all()
        keys: dict[str, OwnKey] = {}
        # The user's first, so that a project's key for the same provider replaces it.
        for row in sorted(rows, key=lambda row: row.project_id is not None):
            try:
                plain = self._sealer.open(
                    _binding(row), Sealed(row.ciphertext, row.encryption_key_id)
                )
            except KeyUnavailable as error:
                log.warning(
                    "a stored provider key cannot be opened; it is not used",
                    extra={"provider_key_id": str(row.id), "why": str(error)},
                )
                continue
            source = KeySource.PROJECT if row.project_id is not None else KeySource.USER
            keys[row.provider] = OwnKey(row.id, row.provider, source, SecretStr(plain))
        return OwnKeys(keys) if keys else NO_OWN_KEYS

    async def for_caller(self, caller: Caller, project_id: str) -> OwnKeys:
        """The keys of the caller's calls, in `project_id` when given (its members only:
        NOT_FOUND for anyone else, as for every project)."""
        pid: uuid.UUID | None = None
        if project_id:
            pid = parse_id(project_id)
            if pid is None:
                raise project_not_found()
            async with reading(self._sessions) as db:
                await require_project_role(db, caller, pid, ProjectRole.VIEWER)
        return await self.for_call(caller.user_id, pid)

    def used(self, key_id: uuid.UUID | None) -> None:
        """Notes that a call uses the key (`ResolvedModel.own_key_id`)."""
        if key_id is None:
            return
        now = time.monotonic()
        last = self._touched.get(key_id)
        if last is not None and now - last < TOUCH_INTERVAL_SECONDS:
            return
        self._touched[key_id] = now
        if len(self._touched) > 10_000:  # forget the oldest half; at worst a few more writes
            for stale in sorted(self._touched, key=self._touched.__getitem__)[:5_000]:
                del self._touched[stale]
        task = asyncio.get_running_loop().create_task(self._touch(key_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _touch(self, key_id: uuid.UUID) -> None:
        try:
            async with self._sessions() as db, db.begin():
                await db.execute(
                    update(ProviderKeyRow)
                    .where(ProviderKeyRow.id == key_id)
                    .values(last_use_time=func.now())
                )
        except Exception:  # a lost timestamp must not fail or log a call
            log.warning("could not record a provider key's use", exc_info=True)

    async def wait_idle(self) -> None:
        """Waits for the use times being written (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def reseal(self) -> int:
        """Seals keys sealed with an older key-encryption key with the current one; returns
        how many. Keys that do not open are left as they are (and logged by id)."""
        current = self._sealer.current_key_id
        done = 0
        after: uuid.UUID | None = None
        while True:
            async with self._sessions() as db, db.begin():
                query = (
                    select(ProviderKeyRow)
                    .where(ProviderKeyRow.encryption_key_id != current)
                    .order_by(ProviderKeyRow.id)
                    .limit(REKEY_BATCH)
                    .with_for_update(skip_locked=True)
                )
                if after is not None:
                    query = query.where(ProviderKeyRow.id > after)
                rows = (await db.scalars(query)).all()
                for row in rows:
                    binding = _binding(row)
                    try:
                        plain = self._sealer.open(
                            binding, Sealed(row.ciphertext, row.encryption_key_id)
                        )
                    except KeyUnavailable as error:
                        log.warning(
                            "a stored provider key cannot be re-encrypted",
                            extra={"provider_key_id": str(row.id), "why": str(error)},
                        )
                        continue
                    sealed = self._sealer.seal(binding, plain)
                    row.ciphertext = sealed.ciphertext
                    row.encryption_key_id = sealed.key_id
                    done += 1
                last = rows[-1].id if rows else None
            if last is None or len(rows) < REKEY_BATCH:
                break
            after = last
        if done:
            log.info("provider keys re-encrypted", extra={"count": done})
        return done

    # --- Background: the re-sealing pass at start ---------------------------------------

    async def start(self) -> None:
        await self.reseal()

    async def stop(self) -> None:
        await self.wait_idle()
