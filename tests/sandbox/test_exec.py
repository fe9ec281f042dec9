"""Executions against real containers: output streams live and in order, limits hold, and
every way an execution can end is reported in its `exit` event and recorded."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.errors import FailedPrecondition, InvalidArgument
from server.db.sandbox_models import SandboxExecution
from server.sandbox import store
from server.sandbox.backend import Stream
from server.sandbox.limits import LimitRequest
from server.sandbox.parts import SandboxParts
from server.sandbox.views import ExecExited, ExecOutput, ExitReason
from tests.sandbox.support import Team, collect, params, run, shell, stderr_until, stdout_until
from tests.support.waiting import eventually

MiB = 1024 * 1024

PYTHON_PROGRAM = b"""\
import sys, time
print("first", flush=True)
time.sleep(0.6)
print("second to stderr", file=sys.stderr, flush=True)
time.sleep(0.6)
print("third", flush=True)
sys.exit(3)
"""

NODE_PROGRAM = b"""\
console.log("first");
setTimeout(() => {
  console.error("second to stderr");
  setTimeout(() => { console.log("third"); process.exit(3); }, 600);
}, 600);
"""


@pytest.mark.parametrize(
    ("runtime", "filename", "program", "argv"),
    [
        ("python", "prog/main.py", PYTHON_PROGRAM, ["python3", "prog/main.py"]),
        ("node", "prog/main.js", NODE_PROGRAM, ["node", "prog/main.js"]),
    ],
)
async def test_output_streams_in_order_while_the_program_runs(
    sandboxes: SandboxParts,
    team: Team,
    runtime: str,
    filename: str,
    program: bytes,
    argv: list[str],
) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, runtime, LimitRequest()
    )
    written = await sandboxes.files.write(team.editor, sandbox.id, filename, program, 0)
    assert written.path == f"/workspace/{filename}"

    ran = await run(sandboxes, team.editor, sandbox.id, params(argv))

    # A print may reach us as more than one chunk ("first", "\n"): group runs of one stream,
    # with the arrival time of each run's first chunk.
    runs: list[tuple[Stream, bytes, float]] = []
    for event, arrival in zip(ran.events, ran.arrivals, strict=True):
        if not isinstance(event, ExecOutput):
            continue
        if runs and runs[-1][0] is event.stream:
            runs[-1] = (event.stream, runs[-1][1] + event.data, runs[-1][2])
        else:
            runs.append((event.stream, event.data, arrival))
    assert [(stream, data) for stream, data, _ in runs] == [
        (Stream.STDOUT, b"first\n"),
        (Stream.STDERR, b"second to stderr\n"),
        (Stream.STDOUT, b"third\n"),
    ]
    assert ran.started.sandbox_id == sandbox.id
    assert ran.exit.exit_code == 3
    assert ran.exit.reason is ExitReason.EXITED
    assert not ran.exit.timed_out
    # Each chunk arrived when it was printed, not all at the end.
    times = [arrival for _, _, arrival in runs]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.4 for gap in gaps), gaps
    assert ran.arrivals[-1] - times[0] >= 1.0


async def test_execution_is_recorded(
    sandboxes: SandboxParts, team: Team, sessions: async_sessionmaker[AsyncSession]
) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    ran = await run(
        sandboxes,
        team.editor,
        sandbox.id,
        params(
            script='cat; echo "$GREETING" >&2; exit 7',
            stdin=b"from stdin\n",
            env={"GREETING": "hi"},
        ),
    )
    assert ran.stdout == b"from stdin\n"
    assert ran.stderr == b"hi\n"
    assert ran.exit.exit_code == 7

    async def finished() -> SandboxExecution | None:
        async with sessions() as db:
            row = await store.get_execution(db, uuid.UUID(ran.started.execution_id))
        return row if row is not None and row.state == "finished" else None

    # Written right after the exit event went out.
    recorded = await eventually(finished, timeout=5)
    assert recorded.exit_code == 7
    assert recorded.reason == "exited"
    assert recorded.command == {"shell": 'cat; echo "$GREETING" >&2; exit 7'}
    assert (recorded.stdout_bytes, recorded.stderr_bytes) == (11, 3)
    assert recorded.duration is not None


async def test_wall_clock_timeout_kills_a_busy_loop(sandboxes: SandboxParts, team: Team) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    started = time.monotonic()
    ran = await run(
        sandboxes,
        team.editor,
        sandbox.id,
        params(["python3", "-c", "while True: pass"], timeout=1.5),
    )
    took = time.monotonic() - started
    assert ran.exit.timed_out
    assert ran.exit.reason is ExitReason.TIMEOUT
    assert ran.exit.signal == 9
    assert 1.5 <= ran.exit.duration.total_seconds() < 3.5
    assert took < 4


async def test_idle_timeout_kills_a_silent_command(sandboxes: SandboxParts, team: Team) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    ran = await run(
        sandboxes,
        team.editor,
        sandbox.id,
        params(script="echo working; sleep 60", idle_timeout=1.0, timeout=30),
    )
    assert ran.stdout == b"working\n"
    assert ran.exit.timed_out
    assert ran.exit.reason is ExitReason.IDLE_TIMEOUT
    assert ran.exit.duration.total_seconds() < 5


async def test_output_beyond_the_cap_is_dropped_and_reported(
    sandboxes: SandboxParts, team: Team
) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    program = (
        "import sys\nchunk = b'x' * 65536\nfor _ in range(800): sys.stdout.buffer.write(chunk)\n"
    )
    ran = await run(sandboxes, team.editor, sandbox.id, params(["python3", "-c", program]))
    assert ran.exit.exit_code == 0
    assert ran.exit.output_truncated
    assert len(ran.stdout) == MiB  # exactly the cap
    assert ran.exit.stdout_bytes == 50 * MiB  # everything the program wrote is counted


async def test_allocating_a_gibibyte_is_oom_killed(sandboxes: SandboxParts, team: Team) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    ran = await run(
        sandboxes,
        team.editor,
        sandbox.id,
        params(["python3", "-c", "x = 'x' * (1 << 30); print(len(x))"], timeout=20),
    )
    assert ran.exit.oom_killed
    assert ran.exit.reason is ExitReason.OOM_KILLED
    assert ran.exit.exit_code == 137
    # The sandbox survives its process being killed.
    after = await shell(sandboxes, team.editor, sandbox.id, "echo alive")
    assert after.stdout == b"alive\n"


async def test_no_network(sandboxes: SandboxParts, team: Team) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    probe = "import socket\ns = socket.socket()\ns.settimeout(3)\ns.connect(('1.1.1.1', 80))\n"
    ran = await run(sandboxes, team.editor, sandbox.id, params(["python3", "-c", probe]))
    assert ran.exit.exit_code == 1
    assert b"Network is unreachable" in ran.stderr
    interfaces = await shell(sandboxes, team.editor, sandbox.id, "ls /sys/class/net")
    assert interfaces.stdout.split() == [b"lo"]


async def test_sandbox_is_locked_down(sandboxes: SandboxParts, team: Team) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    root = await shell(sandboxes, team.editor, sandbox.id, "echo x > /escape")
    assert root.exit.exit_code != 0
    assert b"Read-only file system" in root.stderr
    who = await shell(
        sandboxes,
        team.editor,
        sandbox.id,
        "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status",
    )
    lines = who.stdout.decode().split("\n")
    assert lines[0] == "1000"
    assert "CapEff:\t0000000000000000" in lines
    assert "NoNewPrivs:\t1" in lines
    # /workspace is writable and executable; /tmp is writable.
    works = await shell(
        sandboxes,
        team.editor,
        sandbox.id,
        "printf '#!/bin/sh\\necho ran\\n' > /workspace/t.sh && chmod +x /workspace/t.sh"
        " && /workspace/t.sh && echo tmp > /tmp/x && cat /tmp/x",
    )
    assert works.stdout == b"ran\ntmp\n"


async def test_fork_bomb_hits_the_pid_limit_and_the_host_stays_responsive(
    sandboxes: SandboxParts, team: Team
) -> None:
    bombed = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    other = await sandboxes.lifecycle.create(team.editor, team.project_id, "python", LimitRequest())
    execution = await sandboxes.executions.start_exec(
        team.editor, bombed.id, params(script="f(){ f|f& }; f; sleep 60", timeout=4), None
    )
    # Wait until the bomb has hit the pid limit ("Cannot fork"), then look around.
    events, seen = await stderr_until(execution, b"fork")
    started = time.monotonic()
    elsewhere = await shell(sandboxes, team.editor, other.id, "echo fine")
    assert elsewhere.stdout == b"fine\n"
    assert time.monotonic() - started < 2.0
    rest = [event async for event in events]
    exited = rest[-1]
    assert isinstance(exited, ExecExited)
    # The bomb's own shell may die of a failed fork before the timeout: either way it ended.
    assert exited.reason in (ExitReason.TIMEOUT, ExitReason.EXITED)
    assert len(seen) + len(rest) > 2
    left = await shell(sandboxes, team.editor, bombed.id, "ps -eo args=")
    survivors = [line for line in left.stdout.decode().splitlines() if line.startswith("/bin/sh")]
    assert len(survivors) <= 1, survivors  # at most the shell running this very ps


async def test_cancel_kills_the_whole_process_group(sandboxes: SandboxParts, team: Team) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    execution = await sandboxes.executions.start_exec(
        team.editor,
        sandbox.id,
        params(script="sleep 300 & sleep 301 & (sleep 302; echo never) & echo started; wait"),
        None,
    )
    consumer = asyncio.create_task(collect(execution))
    processes = await _wait_for_processes(sandboxes, team, sandbox.id, "sleep 30", 3)
    assert len(processes) >= 3
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    ps = await shell(sandboxes, team.editor, sandbox.id, "ps -eo args=")
    assert b"sleep 30" not in ps.stdout, ps.stdout.decode()


async def _wait_for_processes(
    sandboxes: SandboxParts, team: Team, sandbox_id: str, needle: str, count: int
) -> list[str]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ps = await shell(sandboxes, team.editor, sandbox_id, "ps -eo args=")
        found = [line for line in ps.stdout.decode().splitlines() if needle in line]
        if len(found) >= count:
            return found
    raise AssertionError(f"{count} processes matching {needle!r} never appeared")


async def test_deadline_kills_and_says_cancelled(sandboxes: SandboxParts, team: Team) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    deadline = asyncio.get_running_loop().time() + 1.5
    ran = await run(sandboxes, team.editor, sandbox.id, params(script="sleep 60"), deadline)
    assert ran.exit.reason is ExitReason.CANCELLED
    assert not ran.exit.timed_out
    assert ran.exit.duration.total_seconds() < 2.0


async def test_invalid_exec_requests_name_each_field(sandboxes: SandboxParts, team: Team) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    with pytest.raises(InvalidArgument) as failure:
        await sandboxes.executions.start_exec(
            team.editor,
            sandbox.id,
            params(
                ["echo"],
                "echo",
                env={"1BAD": "x"},
                timeout=100_000,
                working_dir="../etc",
            ),
            None,
        )
    fields = {v.field for v in failure.value.violations}
    assert fields == {"argv", "env['1BAD']", "timeout", "working_dir"}


async def test_deleting_the_sandbox_ends_its_executions(
    sandboxes: SandboxParts, team: Team
) -> None:
    sandbox = await sandboxes.lifecycle.create(
        team.editor, team.project_id, "python", LimitRequest()
    )
    execution = await sandboxes.executions.start_exec(
        team.editor, sandbox.id, params(script="echo up; sleep 120"), None
    )
    events, _ = await stdout_until(execution, b"up")
    # Busy: pausing would freeze a running command, so it is refused.
    with pytest.raises(FailedPrecondition) as busy:
        await sandboxes.lifecycle.pause(team.editor, sandbox.id)
    assert busy.value.reason == "SANDBOX_BUSY"
    await sandboxes.lifecycle.delete(team.editor, sandbox.id)
    rest = [event async for event in events]
    exited = rest[-1]
    assert isinstance(exited, ExecExited)
    assert exited.reason is ExitReason.KILLED
    assert exited.exit_code == 137
