"""The part every fake provider shares: an aiohttp server on 127.0.0.1, request recording,
scripted error statuses, token pacing (delay, hold, stall) and disconnect detection.

A client that goes away is noticed two ways: the server cancels the handler when its
connection is lost (`handler_cancellation=True`), and writing to a closed connection raises
ConnectionResetError. Either way `disconnected` is set, unless the whole answer had already
been sent.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from types import TracebackType

from aiohttp import web

from tests.fakes.script import RecordedRequest, Script

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


class FakeProviderServer(ABC):
    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self.requests: list[RecordedRequest] = []
        self.tokens_sent = 0
        """Tokens written in the current (or last) stream."""
        self.streams_completed = 0
        self.disconnects = 0
        self.disconnected = asyncio.Event()
        """Set when a client closed its connection before its answer was complete."""
        self.holding = asyncio.Event()
        """Set when the fake reaches a hold point of the script."""
        self.release = asyncio.Event()
        self.last_token_sent = asyncio.Event()
        self._statuses = list(self.script.statuses)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> str:
        app = web.Application()
        self.add_routes(app)
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- what subclasses provide -------------------------------------------------------

    @abstractmethod
    def add_routes(self, app: web.Application) -> None: ...

    @abstractmethod
    def error_response(self, status: int, *, quoted_key: str | None = None) -> web.Response:
        """The provider's error answer for `status` (quoting a rejected key, if given)."""

    @abstractmethod
    async def write_stream(
        self, response: web.StreamResponse, body: dict[str, object], model: str
    ) -> None:
        """Writes the whole scripted answer (see `before_token` / `token_written`)."""

    # --- shared behaviour --------------------------------------------------------------

    async def record(
        self, request: web.Request, api_key: str
    ) -> tuple[dict[str, object], web.Response | None]:
        """Records the request; returns its body and the error to answer with, if any."""
        body = await request.json()
        self.requests.append(
            RecordedRequest(
                path=request.path,
                query=dict(request.query),
                headers={name.lower(): value for name, value in request.headers.items()},
                body=body,
            )
        )
        expected = self.script.expected_api_key
        if expected is not None and api_key != expected:
            return body, self.error_response(401, quoted_key=api_key)
        if self.script.status_forever is not None:
            return body, self.error_response(self.script.status_forever)
        if self._statuses:
            return body, self.error_response(self._statuses.pop(0))
        return body, None

    async def serve_stream(
        self, request: web.Request, body: dict[str, object], model: str
    ) -> web.StreamResponse:
        self.tokens_sent = 0
        response = web.StreamResponse(status=200, headers=SSE_HEADERS)
        try:
            if self.script.hold_before_response:
                await self.hold()
            await response.prepare(request)
            await self.write_stream(response, body, model)
            await response.write_eof()
            self.streams_completed += 1
        except ConnectionResetError:
            self._note_disconnect()
        except asyncio.CancelledError:
            self._note_disconnect()
            raise
        return response

    async def hold(self) -> None:
        self.holding.set()
        await self.release.wait()

    async def before_token(self, index: int) -> None:
        if self.script.hold_after == index:
            await self.hold()
        if self.script.token_delay:
            await asyncio.sleep(self.script.token_delay)

    def token_written(self) -> None:
        self.tokens_sent += 1
        if self.tokens_sent == len(self.script.tokens):
            self.last_token_sent.set()

    def _note_disconnect(self) -> None:
        self.disconnects += 1
        self.disconnected.set()
