"""Opaque, tamper-evident page tokens over keyset cursors (never OFFSET).

One layer handles tokens everywhere: the servicer turns `page_size`/`page_token` into a
`Page` (`PageTokens.page`) and a domain's `Listed.next_key` into `next_page_token`
(`PageTokens.next_token`). Domains take a `Page` and return `Listed`; they never see a
token.

A token carries the sort key of the last item served, a digest of the filters it was
issued for, and an HMAC. A forged or altered token, or one replayed with other filters,
is rejected with INVALID_ARGUMENT. Ids are UUIDv7 (time-ordered), so keyset pagination on
`id` is stable while rows are inserted between pages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from server.core.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_SIGNATURE_BYTES = 16


@dataclass(frozen=True)
class Page:
    """A validated page request: how many items, and the key to continue after (if any)."""

    size: int
    after: tuple[str, ...] | None
    kind: str
    filters_digest: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _invalid_token(description: str) -> InvalidArgument:
    return InvalidArgument.of(
        [FieldViolation("page_token", description)], reason="INVALID_PAGE_TOKEN"
    )


class PageTokens:
    """Issues and checks page tokens; one instance per server, keyed by a server secret."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"forge page tokens v1", hashlib.sha256).digest()

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]

    @staticmethod
    def _digest(filters: Mapping[str, Any]) -> str:
        canonical = json.dumps(filters, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def page(
        self, kind: str, page_size: int, page_token: str, filters: Mapping[str, Any] | None = None
    ) -> Page:
        """Validates `page_size` and `page_token` for a List RPC of `kind` with `filters`."""
        if page_size < 0:
            raise InvalidArgument.of([FieldViolation("page_size", "must not be negative")])
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        digest = self._digest(filters or {})
        after = self._decode(page_token, kind, digest) if page_token else None
        return Page(size=size, after=after, kind=kind, filters_digest=digest)

    def next_token(self, page: Page, last_key: Sequence[Any] | None) -> str:
        """The token for the page after `last_key`; empty when there is no next page."""
        if not last_key:
            return ""
        payload = json.dumps(
            {"k": page.kind, "f": page.filters_digest, "a": [str(part) for part in last_key]},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def _decode(self, token: str, kind: str, digest: str) -> tuple[str, ...]:
        try:
            payload_text, signature_text = token.split(".", 1)
            payload = _unb64(payload_text)
            signature = _unb64(signature_text)
        except ValueError as error:
            raise _invalid_token("not a page token issued by this API") from error
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise _invalid_token("not a page token issued by this API")
        data = json.loads(payload)
        if data.get("k") != kind:
            raise _invalid_token("this page token belongs to another list")
        if data.get("f") != digest:
            raise _invalid_token("the filters differ from those the page token was issued for")
        return tuple(data["a"])


SelectT = TypeVar("SelectT", bound=Select[Any])


def keyset(
    query: SelectT,
    id_column: InstrumentedAttribute[uuid.UUID],
    page: Page,
    *,
    descending: bool = False,
) -> SelectT:
    """Orders `query` by the (time-ordered) id, continues after the page's cursor, and fetches
    one row more than the page holds (to know whether another page follows)."""
    key = after_id(page)
    if key is not None:
        query = query.where(id_column < key if descending else id_column > key)
    ordering = id_column.desc() if descending else id_column.asc()
    return query.order_by(ordering).limit(page.size + 1)


def after_id(page: Page) -> uuid.UUID | None:
    """The id a keyset page continues after (None: the first page), for a query keyed by
    id alone; INVALID_PAGE_TOKEN if the token's key is not one."""
    if page.after is None:
        return None
    try:
        return uuid.UUID(page.after[0])
    except ValueError as error:
        raise _invalid_token("not a page token issued by this API") from error


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Listed(Generic[T]):
    """One page of a list, as a domain returns it: the items, and the sort key of the last
    one when another page follows (the servicer turns it into the next page token)."""

    items: Sequence[T]
    next_key: Sequence[str] | None = None


def listed(rows: Sequence[T], page: Page, key: Callable[[T], Sequence[Any]]) -> Listed[T]:
    """The page from the `page.size + 1` rows a keyset query fetched."""
    items = rows[: page.size]
    more = len(rows) > page.size and bool(items)
    return Listed(items, [str(part) for part in key(items[-1])] if more else None)
