"""Structured logging: one JSON object per line, tagged with the current request id (and
the trace id when the line is written inside a traced call)."""

from __future__ import annotations

import logging
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from server.core.context import current_request_id


class _RequestIdFilter(logging.Filter):
    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self._worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        if self._worker is not None:  # one of a supervisor's workers (server/workers.py)
            record.worker = self._worker
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        if not hasattr(record, "trace_id"):
            span = trace.get_current_span().get_span_context()
            if span.is_valid:  # a traced call (server/core/tracing.py)
                record.trace_id = f"{span.trace_id:032x}"
        return True


def configure_logging(level: str = "INFO", fmt: str = "json", worker: int | None = None) -> None:
    """`worker`: the index of this worker process, added to every line as `worker`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter(worker))
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        where = "" if worker is None else f"worker {worker} "
        handler.setFormatter(
            logging.Formatter(
                f"%(asctime)s %(levelname)s {where}%(name)s [%(request_id)s] %(message)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
