"""Request ids (AIP-155): a retry of a call that creates something gets the first result.

A call names itself with the `request_id` field of its request, or through the REST
gateway with the `Idempotency-Key` header (Envoy passes it on as metadata). The first call
with an id claims it (one row in PostgreSQL, so several server processes agree) and stores
its result; a retry with the same id and request gets that result, or waits while the
first call still runs; the same id with a different request is refused.

The claim is taken before the work and the result stored after it, not in the work's own
transaction: should a server die between its work committing and storing the result, a
retry after the lease runs the request again. That window is a few milliseconds wide.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.aead import LazyAesGcm
from server.core.errors import (
    Aborted,
    FieldViolation,
    ForgeError,
    InvalidArgument,
    error_document,
)
from server.db.idempotency_models import IdempotencyRecord

REQUEST_ID_FIELD = "request_id"
IDEMPOTENCY_HEADER = "idempotency-key"
MAX_REQUEST_ID_LENGTH = 128
REQUEST_ID_REUSED = "REQUEST_ID_REUSED"
REQUEST_IN_PROGRESS = "REQUEST_IN_PROGRESS"
_POLL_SECONDS = (0.02, 0.05, 0.1, 0.2, 0.25)
"""Waits between looks at a first call still running: quick at first, then steady."""


def request_id_of(request: Message, metadata: Mapping[str, str]) -> str | None:
    """The call's request id (field or header), validated; None when it has none."""
    field = str(getattr(request, REQUEST_ID_FIELD, ""))
    header = metadata.get(IDEMPOTENCY_HEADER, "").strip()
    if field and header and field != header:
        raise InvalidArgument.of(
            [FieldViolation(REQUEST_ID_FIELD, "differs from the Idempotency-Key header")]
        )
    value = field or header
    if not value:
        return None
    if len(value) > MAX_REQUEST_ID_LENGTH or not all(" " < c <= "~" for c in value):
        raise InvalidArgument.of(
            [
                FieldViolation(
                    REQUEST_ID_FIELD,
                    f"must be 1 to {MAX_REQUEST_ID_LENGTH} printable ASCII characters "
                    "without spaces (a UUID is recommended)",
                )
            ]
        )
    return value


def fingerprint_of(request: Message) -> bytes:
    """What makes two requests "the same": every field but the request id."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField(REQUEST_ID_FIELD)
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).digest()


@dataclass(frozen=True, slots=True)
class RequestKey:
    user_id: uuid.UUID
    method: str
    request_id: str

    def associated_data(self) -> bytes:
        return f"{self.user_id}\n{self.method}\n{self.request_id}".encode()


@dataclass(frozen=True, slots=True)
class Claimed:
    """This call runs the request; it must `finish` or `release` the claim."""

    owner: str


@dataclass(frozen=True, slots=True)
class Done:
    """The first call's result."""

    response: bytes | None
    resource: str | None
    error: dict[str, Any] | None


def reused(method: str) -> InvalidArgument:
    name = method.rsplit("/", 1)[-1]
    return InvalidArgument.of(
        [
            FieldViolation(
                REQUEST_ID_FIELD,
                f"was already used for a different {name} request; use a new id for a new request",
            )
        ],
        reason=REQUEST_ID_REUSED,
    )


def still_running() -> Aborted:
    return Aborted(
        "the first call with this request id is still running; retry shortly",
        REQUEST_IN_PROGRESS,
        retry_after=timedelta(seconds=1),
    )


class _Sealer:
    """Results at rest are encrypted (AES-GCM, bound to their key): one may hold a secret."""

    def __init__(self, secret: bytes) -> None:
        self._aead = LazyAesGcm(hmac.new(secret, b"forge idempotency v1", hashlib.sha256).digest())

    def seal(self, key: RequestKey, plain: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plain, key.associated_data())

    def open(self, key: RequestKey, sealed: bytes) -> bytes:
        return self._aead.decrypt(sealed[:12], sealed[12:], key.associated_data())


class IdempotencyStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        secret: bytes,
        ttl_seconds: float,
        lease_seconds: float,
        wait_seconds: float,
    ) -> None:
        self._sessions = sessions
        self._sealer = _Sealer(secret)
        self._fingerprint_key = hmac.new(secret, b"forge request fingerprint v1", "sha256").digest()
        self._ttl = timedelta(seconds=ttl_seconds)
        self._lease = timedelta(seconds=lease_seconds)
        self.wait_seconds = wait_seconds

    async def claim(
        self, key: RequestKey, fingerprint: bytes, deadline: float | None = None
    ) -> Claimed | Done:
        """Claims `key` for this call, or returns the first call's result (waiting while it
        runs, until `deadline` (a `time.monotonic()` value) or the configured wait).

        Raises REQUEST_ID_REUSED for a different request, REQUEST_IN_PROGRESS when the
        first call is still running when the wait is over."""
        # Kept keyed (HMAC): a request may hold a secret (a provider key), and a plain hash
        # of it at rest could be tested against guesses.
        fingerprint = hmac.new(self._fingerprint_key, fingerprint, "sha256").digest()
        give_up = time.monotonic() + self.wait_seconds
        if deadline is not None:
            give_up = min(give_up, deadline - 0.5)
        polls = iter(_POLL_SECONDS)
        while True:
            owner = secrets.token_hex(16)
            if await self._try_claim(key, fingerprint, owner):
                return Claimed(owner)
            record = await self._read(key)
            if record is None:
                continue  # expired and purged between the two statements
            if record.fingerprint != fingerprint:
                raise reused(key.method)
            if record.state == "done":
                response = record.response
                return Done(
                    self._sealer.open(key, response) if response is not None else None,
                    record.resource,
                    record.error,
                )
            pause = next(polls, _POLL_SECONDS[-1])
            if time.monotonic() + pause > give_up:
                raise still_running()
            await asyncio.sleep(pause)

    async def _try_claim(self, key: RequestKey, fingerprint: bytes, owner: str) -> bool:
        table = IdempotencyRecord
        now = func.now()
        statement = (
            insert(table)
            .values(
                user_id=key.user_id,
                method=key.method,
                request_id=key.request_id,
                fingerprint=fingerprint,
                state="pending",
                owner=owner,
                expire_time=now + self._ttl,
            )
            .on_conflict_do_update(
                index_elements=["user_id", "method", "request_id"],
                set_={
                    "fingerprint": fingerprint,
                    "state": "pending",
                    "owner": owner,
                    "response": None,
                    "resource": None,
                    "error": None,
                    "claimed_at": now,
                    "expire_time": now + self._ttl,
                },
                # An expired id is free again; a first call gone quiet past its lease is
                # taken over (only by the same request).
                where=(table.expire_time < now)
                | (
                    (table.state == "pending")
                    & (table.claimed_at < now - self._lease)
                    & (table.fingerprint == fingerprint)
                ),
            )
            .returning(table.owner)
        )
        async with self._sessions() as db, db.begin():
            return bool((await db.execute(statement)).scalar_one_or_none() == owner)

    async def _read(self, key: RequestKey) -> IdempotencyRecord | None:
        async with self._sessions() as db:
            return await db.scalar(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.user_id == key.user_id,
                    IdempotencyRecord.method == key.method,
                    IdempotencyRecord.request_id == key.request_id,
                    IdempotencyRecord.expire_time >= func.now(),
                )
            )

    async def finish(
        self,
        key: RequestKey,
        claim: Claimed,
        *,
        response: bytes | None = None,
        resource: str | None = None,
        error: ForgeError | None = None,
    ) -> None:
        """Stores the result of a claimed call: what a retry gets from now on."""
        async with self._sessions() as db, db.begin():
            await db.execute(
                update(IdempotencyRecord)
                .where(*self._owned(key, claim))
                .values(
                    state="done",
                    response=self._sealer.seal(key, response) if response is not None else None,
                    resource=resource,
                    error=error_document(error) if error is not None else None,
                )
            )

    async def release(self, key: RequestKey, claim: Claimed) -> None:
        """Gives the id back (the call did nothing lasting): a retry runs the request anew."""
        async with self._sessions() as db, db.begin():
            await db.execute(delete(IdempotencyRecord).where(*self._owned(key, claim)))

    @staticmethod
    def _owned(key: RequestKey, claim: Claimed) -> tuple[Any, ...]:
        return (
            IdempotencyRecord.user_id == key.user_id,
            IdempotencyRecord.method == key.method,
            IdempotencyRecord.request_id == key.request_id,
            IdempotencyRecord.owner == claim.owner,
        )

    async def purge_expired(self) -> None:
        async with self._sessions() as db, db.begin():
            await db.execute(
                delete(IdempotencyRecord).where(IdempotencyRecord.expire_time < func.now())
            )
