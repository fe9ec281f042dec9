"""FORGE_WORKERS=2: `python -m server` supervises two worker processes on one port. Calls
spread over both; SIGTERM to one worker drains it and it is replaced, and no call a client
retries on UNAVAILABLE is lost meanwhile; SIGTERM to the supervisor stops the workers and
then the embedded PostgreSQL, and it exits 0. A worker that cannot serve stops the start with
one line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
from forge.auth.v1 import auth_pb2, auth_pb2_grpc

from server.config import Settings
from server.core.keys import server_secret
from server.db.embedded import EmbeddedPostgres
from tests.support.accounts import Account, register
from tests.support.process import ServerProcess
from tests.support.waiting import eventually

RETRY_PAUSE_SECONDS = 0.05


def log_lines(process: ServerProcess) -> list[dict[str, Any]]:
    """The JSON log lines the supervisor and its workers wrote so far."""
    lines = []
    for raw in list(process.output):
        if raw.startswith(b"{"):
            lines.append(json.loads(raw))
    return lines


def served_by(process: ServerProcess, since: int = 0) -> set[int]:
    """The workers (indexes) whose access log shows a call, from log line `since` on."""
    return {
        line["worker"]
        for line in log_lines(process)[since:]
        if line.get("logger") == "forge.access" and "worker" in line
    }


async def who_am_i(port: int, account: Account) -> str:
    """GetCurrentUser on a fresh connection (the kernel picks the worker per connection)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        user = await auth_pb2_grpc.AuthServiceStub(channel).GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(), metadata=account.metadata, timeout=10
        )
    return str(user.id)


RETRIED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
"""What the client retries: UNAVAILABLE, and CANCELLED it did not ask for, which grpc's server
answers to the calls it had received but not yet started when it stops (tests/test_shutdown.py
sees the same): a read such as GetCurrentUser is safe to retry on both."""


async def call_with_retries(port: int, account: Account, channel: grpc.aio.Channel) -> int:
    """One GetCurrentUser as a client retrying RETRIED would make it; the retries."""
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    for retries in range(200):
        try:
            user = await stub.GetCurrentUser(
                auth_pb2.GetCurrentUserRequest(), metadata=account.metadata, timeout=10
            )
        except grpc.aio.AioRpcError as error:
            if error.code() not in RETRIED:
                raise
            await asyncio.sleep(RETRY_PAUSE_SECONDS)
            continue
        assert user.id == account.user_id
        return retries
    raise AssertionError("still refused after 200 tries")


def worker_pids(process: ServerProcess) -> dict[int, int]:
    """Worker index → pid, as the supervisor logged them (at start and on replacement)."""
    pids: dict[int, int] = {}
    for line in log_lines(process):
        if line.get("logger") != "forge.workers":
            continue
        if line["message"] == "serving":
            pids.update({int(index): pid for index, pid in line["workers"].items()})
        elif line["message"] == "worker serving":
            pids[line["worker"]] = line["pid"]
    return pids


async def test_two_workers_share_the_load_restart_one_by_one_and_stop_cleanly(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(
        {
            "FORGE_WORKERS": "2",
            "FORGE_DATA_DIR": str(data_dir),  # the embedded PostgreSQL, started once
            "FORGE_LOG_FORMAT": "json",
            "FORGE_BCRYPT_ROUNDS": "4",
            "FORGE_SHUTDOWN_DRAIN_SECONDS": "0.5",
            "FORGE_SHUTDOWN_GRACE_SECONDS": "5",
        },
        startup_timeout=120,
    )
    assert "FORGE_DATABASE_URL" not in os.environ  # embedded, as on a fresh machine
    port = await server.start()
    try:
        first_pids = worker_pids(server)
        assert sorted(first_pids) == [0, 1]
        assert len(set(first_pids.values())) == 2

        # Calls on new connections reach both workers; a token one worker issued is good on
        # the other (one development JWT secret, made by the supervisor).
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            account = await register(channel)

        async def both_serve() -> bool:
            assert await who_am_i(port, account) == account.user_id
            return served_by(server) == {0, 1}

        await eventually(both_serve, timeout=30)
        assert (data_dir / "jwt_secret").exists()

        # Rolling restart: SIGTERM worker 1 while clients keep calling (several connections,
        # so some are on worker 1); every call succeeds, retrying on UNAVAILABLE.
        stop_calling = asyncio.Event()
        results: list[int] = []

        async def client() -> None:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                while not stop_calling.is_set():
                    results.append(await call_with_retries(port, account, channel))

        clients = [asyncio.create_task(client()) for _ in range(6)]
        await eventually(lambda: asyncio.sleep(0, len(results) >= 20))
        os.kill(first_pids[1], signal.SIGTERM)

        async def replaced() -> bool:
            return worker_pids(server).get(1) not in (None, first_pids[1])

        await eventually(replaced, timeout=60)
        replaced_at = len(log_lines(server))
        await eventually(lambda: asyncio.sleep(0, len(results) >= 20 + 20))
        stop_calling.set()
        await asyncio.gather(*clients)  # (a call that failed for good raises here)

        exits = [
            line
            for line in log_lines(server)
            if line.get("message") == "worker exited; replacing it"
        ]
        assert [(e["worker"], e["pid"], e["exit_code"]) for e in exits] == [
            (1, first_pids[1], 0)  # it drained and exited cleanly
        ]
        assert not psutil.pid_exists(first_pids[1])
        new_pids = worker_pids(server)
        assert new_pids[0] == first_pids[0]  # the other worker served throughout

        async def new_worker_serves() -> bool:
            assert await who_am_i(port, account) == account.user_id
            return 1 in served_by(server, since=replaced_at)

        await eventually(new_worker_serves, timeout=30)

        # SIGTERM to the supervisor: the workers drain and exit, PostgreSQL stops last.
        server.send_signal(signal.SIGTERM)
        assert await server.wait(60) == 0, server.text()
        for pid in (*first_pids.values(), *new_pids.values()):
            assert not psutil.pid_exists(pid)
        assert not (data_dir / "pgdata" / "postmaster.pid").exists()
        lines = log_lines(server)
        # the workers stopping with the supervisor were not replaced
        assert sum(line.get("message") == "worker exited; replacing it" for line in lines) == 1
        # each worker drained and stopped before the supervisor did
        order = [
            (line["logger"], line.get("worker")) for line in lines if line["message"] == "stopped"
        ]
        assert order[-1] == ("forge.workers", None)
        assert {("forge", 0), ("forge", 1)} <= set(order[:-1])
    finally:
        await server.kill()


async def test_a_worker_that_cannot_serve_stops_the_start_with_one_line(
    postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    url = await postgres.ensure_database("forge_workers_refused")
    with socket.socket() as taken:  # held without SO_REUSEPORT: the workers cannot bind it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ServerProcess(
            {
                "FORGE_WORKERS": "2",
                "FORGE_DATABASE_URL": url,
                "FORGE_DATA_DIR": str(tmp_path / "data"),
                "FORGE_LISTEN_ADDRESS": f"127.0.0.1:{port}",
            }
        )
        with pytest.raises(AssertionError, match="server did not start"):
            await server.start()
    text = b"".join(server.output).decode()
    assert "forge: not starting: worker" in text
    assert "exited before serving" in text


def test_workers_making_the_development_secret_at_once_end_with_one(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret=None, environment="development")
    secrets: list[bytes] = []
    start = threading.Barrier(8)

    def make() -> None:
        start.wait()
        secrets.append(server_secret(settings))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(secrets) == 8
    assert len(set(secrets)) == 1
    assert (tmp_path / "jwt_secret").read_bytes().strip() == secrets[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jwt_secret"]  # no drafts left
