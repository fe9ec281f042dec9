"""The embedded PostgreSQL of a killed server: the next server on the same data directory
adopts it (or replaces its stale pid file) and leaves no postgres behind after a clean stop;
while a server is alive, a second one on its data directory refuses to start."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import psutil
import pytest

from tests.support.accounts import login, register
from tests.support.process import ServerProcess
from tests.support.waiting import eventually

STARTUP_SECONDS = 120.0


def postmasters(pgdata: Path) -> list[psutil.Process]:
    """The postgres processes started on `pgdata` (`postgres -D <pgdata> ...`)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = process.info["cmdline"] or []
        if command and Path(command[0]).name == "postgres" and str(pgdata) in command:
            found.append(process)
    return found


def pid_file_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


@pytest.fixture
async def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Path]:
    # No database URL: each server uses the embedded PostgreSQL under the data directory.
    monkeypatch.delenv("FORGE_DATABASE_URL", raising=False)
    path = tmp_path / "forge-data"
    yield path
    for process in postmasters((path / "pgdata").resolve()):  # a failed test's leftover
        process.kill()


@pytest.fixture
async def new_server(data_dir: Path) -> AsyncIterator[Callable[[], ServerProcess]]:
    started: list[ServerProcess] = []

    def make() -> ServerProcess:
        process = ServerProcess(
            {
                "FORGE_DATA_DIR": str(data_dir),
                "FORGE_LOG_FORMAT": "text",
                "FORGE_BCRYPT_ROUNDS": "4",
                "FORGE_SHUTDOWN_GRACE_SECONDS": "1",
            },
            startup_timeout=STARTUP_SECONDS,
        )
        started.append(process)
        return process

    yield make
    for process in started:
        await process.kill()


async def registers(port: int) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        return (await register(channel)).email


async def logs_in(port: int, email: str) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await login(channel, email)


async def no_postmaster_left(pgdata: Path) -> None:
    async def gone() -> bool:
        return not postmasters(pgdata)

    await eventually(gone, timeout=30)


async def test_next_server_adopts_a_killed_servers_postgres_and_stops_it(
    data_dir: Path, new_server: Callable[[], ServerProcess]
) -> None:
    pgdata = (data_dir / "pgdata").resolve()
    first = new_server()
    email = await registers(await first.start())
    orphan = pid_file_pid(pgdata)

    first.send_signal(signal.SIGKILL)
    assert await first.wait(timeout=30) == -signal.SIGKILL
    # Nothing stops the postgres of a killed server.
    assert [p.pid for p in postmasters(pgdata)] == [orphan]

    second = new_server()
    port = await second.start()
    assert pid_file_pid(pgdata) == orphan, "the running postmaster is adopted, not replaced"
    await logs_in(port, email)  # the same database
    await registers(port)

    second.send_signal(signal.SIGTERM)
    assert await second.wait(timeout=60) == 0, second.text()
    await no_postmaster_left(pgdata)
    assert not (pgdata / "postmaster.pid").exists()


async def test_stale_pid_file_of_a_dead_postgres_is_replaced(
    data_dir: Path, new_server: Callable[[], ServerProcess]
) -> None:
    pgdata = (data_dir / "pgdata").resolve()
    first = new_server()
    email = await registers(await first.start())
    first.send_signal(signal.SIGKILL)
    assert await first.wait(timeout=30) == -signal.SIGKILL
    postmaster = pid_file_pid(pgdata)
    psutil.Process(postmaster).kill()

    async def reaped() -> bool:  # a zombie still counts as alive for postgres's lock checks
        return not psutil.pid_exists(postmaster)

    await eventually(reaped, timeout=30)
    await no_postmaster_left(pgdata)
    assert (pgdata / "postmaster.pid").exists(), "a killed postmaster leaves its pid file"

    second = new_server()
    port = await second.start()
    await logs_in(port, email)
    await registers(port)

    second.send_signal(signal.SIGTERM)
    assert await second.wait(timeout=60) == 0, second.text()
    await no_postmaster_left(pgdata)


async def test_second_live_server_on_the_same_data_dir_refuses_to_start(
    data_dir: Path, new_server: Callable[[], ServerProcess]
) -> None:
    pgdata = (data_dir / "pgdata").resolve()
    first = new_server()
    port = await first.start()
    assert first.proc is not None

    second = new_server()
    with pytest.raises(AssertionError, match="server did not start"):
        await second.start()
    assert second.proc is not None
    assert second.proc.returncode not in (None, 0)
    assert "in use by another running Forge server" in second.text()
    assert f"pid {first.proc.pid}" in second.text()

    # The refusal left the first server and its postgres alone.
    await registers(port)
    first.send_signal(signal.SIGTERM)
    assert await first.wait(timeout=60) == 0, first.text()
    await no_postmaster_left(pgdata)
