"""Settles the answers of servers that died while streaming them.

An answer still IN_PROGRESS whose row was not written for `chat_orphan_after_seconds` has
no server left: its own would have saved it or marked it alive (saver.py) well within
that. At start-up and every `chat_sweep_interval_seconds`, each server settles such answers
as INTERRUPTED with the text saved until then, and charges them like a cancelled answer
(the estimated input tokens, and the saved text's tokens; nothing when no text was saved).
Several servers sweep safely: each locks the rows it settles, skipping those another holds.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents import answer_store
from server.agents.usage import UsageLedger
from server.core.tasks import TaskSupervisor
from server.llm import Usage, estimate_tokens

log = logging.getLogger(__name__)

BATCH = 200
"""Answers settled per transaction."""


class AnswerSweeper:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        ledger: UsageLedger,
        orphan_after: float,
        interval: float,
    ) -> None:
        self._sessions = sessions
        self._ledger = ledger
        self._orphan_after = orphan_after
        self._interval = interval
        self._tasks = TaskSupervisor("answer-sweeper")

    async def start(self) -> None:
        self._tasks.every("sweep", self._interval, self.sweep).poke()

    async def stop(self) -> None:
        await self._tasks.stop()

    async def sweep(self) -> int:
        """Settles every orphaned answer; returns how many."""
        total = 0
        while True:
            settled = await self._sweep_batch()
            total += settled
            if settled < BATCH:
                break
        if total:
            log.info("settled answers of a stopped server", extra={"answers": total})
        return total

    async def _sweep_batch(self) -> int:
        async with self._sessions() as db, db.begin():
            orphans = await answer_store.lock_orphans(db, self._orphan_after, BATCH)
            if not orphans:
                return 0
            settled: list[tuple[uuid.UUID, int, int]] = []
            owed: dict[tuple[uuid.UUID, str], list[int]] = defaultdict(lambda: [0, 0, 0])
            for orphan in orphans:
                usage = (
                    Usage(orphan.input_tokens, estimate_tokens(orphan.content))
                    if orphan.content
                    else Usage()
                )
                settled.append((orphan.message_id, usage.input_tokens, usage.output_tokens))
                if orphan.user_id is not None and (usage.input_tokens or usage.output_tokens):
                    sums = owed[orphan.user_id, orphan.model]
                    sums[0] += usage.input_tokens
                    sums[1] += usage.output_tokens
                    sums[2] += 1
            await answer_store.interrupt(db, settled)
            # In one order on every server, so two sweepers never wait on each other.
            keys = sorted(owed)
            charges = [
                self._ledger.charge(user, model, Usage(owed[user, model][0], owed[user, model][1]))
                for user, model in keys
            ]
            await answer_store.charge(
                db,
                [charge for charge in charges if charge is not None],
                [owed[key][2] for key, charge in zip(keys, charges, strict=True) if charge],
            )
            return len(orphans)
