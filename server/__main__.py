"""python -m server: settings → database → migrations → gRPC server, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError
from pydantic_settings import SettingsError

from server.app import ForgeServer
from server.config import Settings
from server.core.keys import InsecureConfiguration
from server.core.logging import configure_logging
from server.core.module import ModuleBuilder
from server.db.embedded import DataDirInUse
from server.services import SERVICE_MODULES
from server.workers import WorkerFailed, WorkerLink, supervise

log = logging.getLogger("forge")


async def serve(
    settings: Settings, builders: Sequence[ModuleBuilder], link: WorkerLink | None = None
) -> None:
    """Serves until SIGTERM/SIGINT; `link`: this is a supervisor's worker (server/workers.py)."""
    app = ForgeServer(settings, builders)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            app.end_drain()  # asked twice: stop waiting for load balancers
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    if link is not None:
        link.on_supervisor_gone(on_signal)
    try:
        await app.start()
        settle_garbage_collection()
        if link is not None:
            link.serving(app.port)  # the supervisor prints the line once all workers serve
        else:
            # Tooling (make run, tests) reads this line to learn the bound port.
            print(f"forge: serving on port {app.port}", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await app.stop()
    log.info("stopped")


GC_YOUNG_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation (CPython's default is 700):
a busy server allocates that many in a few milliseconds, and every tenth of every tenth
collection walks all the older objects."""


def settle_garbage_collection() -> None:
    """What start-up made (modules, settings, prebuilt statements, pools) lives as long as the
    process: it is moved out of the collector's sight, so that a full collection under load
    walks only what calls and streams made. Measured with 2,000 chat streams open: full
    collections paused the event loop for 200-490 ms each, every stream and open waiting."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def loop_factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when enabled (it serves unary calls with less CPU), else asyncio's."""
    if not settings.uvloop:
        return None
    import uvloop

    return uvloop.new_event_loop


def main(builders: Sequence[ModuleBuilder] = SERVICE_MODULES) -> None:
    try:
        settings = Settings(_cli_parse_args=True)
    except ValidationError as invalid:
        # One line per setting the operator must fix, no traceback.
        for error in invalid.errors():
            where = ".".join(str(part) for part in error["loc"])
            print(f"forge: not starting: setting {where}: {error['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
    except SettingsError as unreadable:  # e.g. a JSON setting that is not JSON
        print(f"forge: not starting: {unreadable}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    try:
        if settings.workers > 1:
            supervise(settings, builders)  # N worker processes on one port
        else:
            with asyncio.Runner(loop_factory=loop_factory(settings)) as runner:
                runner.run(serve(settings, builders))
    except (DataDirInUse, InsecureConfiguration, WorkerFailed) as refused:
        # A configuration the operator must change: one clear line, no traceback.
        print(f"forge: not starting: {refused}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
