"""GetRun, ListRuns and WatchRun: a mixin of AgentService.

The servicer that inherits it provides (see server/agents/runs/build.py and
server/agents/service.py):
- `self._run_reader: RunReader` (GetRun, ListRuns),
- `self._run_watcher: RunWatcher` (WatchRun),
- `self._pages: PageTokens` (ListRuns' page tokens: handled here, at the servicer).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from forge.agents.v1 import agents_pb2

from server.agents.runs import convert
from server.agents.runs.events import StoredEvent
from server.agents.runs.watch import RunReader, RunWatcher
from server.core.context import current_call
from server.core.errors import ForgeError
from server.core.pagination import PageTokens
from server.core.streaming import server_stream

Context = grpc.aio.ServicerContext[Any, Any]


class ReadRpcs:
    _run_reader: RunReader
    _run_watcher: RunWatcher
    _pages: PageTokens

    async def GetRun(self, request: agents_pb2.GetRunRequest, context: Context) -> agents_pb2.Run:
        caller = current_call().require_caller()
        return convert.run_to_proto(await self._run_reader.get(caller, request.run_id))

    async def ListRuns(
        self, request: agents_pb2.ListRunsRequest, context: Context
    ) -> agents_pb2.ListRunsResponse:
        caller = current_call().require_caller()
        filters = {
            "project_id": request.project_id,
            "status": request.status,
            "task_id": request.task_id,
        }
        page = self._pages.page("runs", request.page_size, request.page_token, filters)
        status = convert.RUN_STATUSES_FROM_PROTO.get(request.status)
        result = await self._run_reader.list(
            caller, request.project_id, page, status, request.task_id
        )
        return agents_pb2.ListRunsResponse(
            runs=[convert.run_to_proto(run) for run in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def WatchRun(
        self, request: agents_pb2.WatchRunRequest, context: Context
    ) -> AsyncIterator[agents_pb2.RunEvent]:
        """Events carry their stored `seq` and `create_time` (no renumbering): resuming with
        `after_seq` = the last seq received continues without gaps or duplicates. Through
        Envoy this is an SSE stream (`GET /v1/runs/{id}:watch?afterSeq=N`). A stream that
        fails, or is still open when this server shuts down (SERVER_SHUTTING_DOWN; the run
        goes on in another process), ends with an `error` carrying that last seq."""
        caller = current_call().require_caller()
        source = await self._run_watcher.open(caller, request.run_id, request.after_seq)
        sent = request.after_seq

        def message(stored: StoredEvent, _numbered: int) -> agents_pb2.RunEvent:
            nonlocal sent
            sent = stored.seq
            return convert.stored_event_to_proto(stored)

        def failure(error: ForgeError, _numbered: int) -> agents_pb2.RunEvent:
            return convert.watch_error_event(error, sent)

        async with server_stream(source, message, failure) as events:
            async for event in events:
                yield event
