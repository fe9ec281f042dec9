"""The `forge` CLI (forge_client.cli, typer + rich) against the real server: typer's
CliRunner in a worker thread (the server serves on the test's event loop), and a real
subprocess where the output must be read live."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import tarfile
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from forge_client.cli.main import app
from typer.testing import CliRunner, Result

from server.app import ForgeServer

PASSWORD = "Passw0rd-cli"
GOAL = (
    "Write a program that greets.\n\n```python\n# file: greet.py\n"
    'print("hello from the cli")\n```\n'
)


class Cli:
    """`forge …` as a user of one config dir runs it."""

    def __init__(self, server: ForgeServer, config_dir: Path) -> None:
        self.address = f"127.0.0.1:{server.port}"
        self.config_dir = config_dir
        self.env = {"FORGE_CONFIG_DIR": str(config_dir), "FORGE_SERVER": self.address}

    async def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        merged: dict[str, str | None] = {**self.env, **(env or {})}
        return await asyncio.to_thread(lambda: runner.invoke(app, list(args), env=merged))

    async def json(self, *args: str) -> Any:
        result = await self(*args, "--json")
        assert result.exit_code == 0, result.output + result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return tmp_path / "forge-config"


@pytest.fixture
async def cli(forge: ForgeServer, config_dir: Path) -> Cli:
    """Signed in (forge login) as a fresh account."""
    from forge_client import AsyncForge

    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    async with AsyncForge.connect(f"127.0.0.1:{forge.port}") as client:
        await client.register(email, PASSWORD, "Cli")
    runner = Cli(forge, config_dir)
    result = await runner("login", "--email", email, "--password", PASSWORD)
    assert result.exit_code == 0, result.output + result.stderr
    return runner


async def test_login_stores_the_session_readable_by_its_owner_only(cli: Cli) -> None:
    path = cli.config_dir / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["access_token"]
    assert stored["refresh_token"]
    assert stored["server"] == cli.address
    me = await cli.json("whoami")
    assert me["email"] == stored["email"]


async def test_a_wrong_password_fails_with_its_reason_and_stores_nothing(
    forge: ForgeServer, tmp_path: Path
) -> None:
    runner = Cli(forge, tmp_path / "nobody")
    result = await runner("login", "--email", "nobody@example.com", "--password", "Wr0ng-pass")
    assert result.exit_code == 1
    assert "UNAUTHENTICATED" in result.stderr
    assert not (tmp_path / "nobody" / "credentials.json").exists()


async def test_an_api_key_from_the_environment_signs_calls_in(
    cli: Cli, forge: ForgeServer, tmp_path: Path
) -> None:
    from forge_client import Credentials, Forge, auth

    stored = json.loads((cli.config_dir / "credentials.json").read_text())

    def new_key() -> str:
        with Forge.connect(
            cli.address, credentials=Credentials(token=stored["access_token"])
        ) as client:
            return client.auth.create_api_key(auth.CreateApiKeyRequest(name="cli")).secret

    key = await asyncio.to_thread(new_key)
    anonymous = Cli(forge, tmp_path / "empty")
    me = await anonymous("whoami", "--json", env={"FORGE_API_KEY": key})
    assert me.exit_code == 0, me.stderr
    assert json.loads(me.stdout)["email"] == stored["email"]


async def test_projects_and_the_task_board(cli: Cli) -> None:
    project = await cli.json("projects", "create", "cli project", "--description", "from the cli")
    listed = await cli.json("projects", "list")
    assert project["id"] in [item["id"] for item in listed]

    task = await cli.json("tasks", "create", project["id"], "Write the docs")
    await cli.json("tasks", "create", project["id"], "Ship it")
    moved = await cli.json("tasks", "move", project["id"], task["id"], "done")
    assert moved["status"] == "TASK_STATUS_DONE"

    board = await cli("tasks", "board", project["id"], env={"COLUMNS": "140"})
    assert board.exit_code == 0, board.stderr
    lines = board.stdout.splitlines()
    header = next(line for line in lines if "To do" in line)
    # Columns side by side: "Ship it" under To do, "Write the docs" under Done.
    assert header.index("To do") < header.index("Done")
    assert any("Ship it" in line for line in lines)
    done_column = header.rindex("╭")  # where the last column (Done) begins
    assert any(line.find("Write the docs") >= done_column for line in lines), board.stdout

    cards = await cli.json("tasks", "board", project["id"])
    assert sorted(card["title"] for card in cards) == ["Ship it", "Write the docs"]


async def test_errors_exit_1_with_the_reason(cli: Cli) -> None:
    result = await cli("projects", "create", "")
    assert result.exit_code == 1
    assert "INVALID_ARGUMENT" in result.stderr


async def test_chat_prints_tokens_as_they_arrive(cli: Cli) -> None:
    project = await cli.json("projects", "create", "chatty")
    words = " ".join(f"word{number}" for number in range(60))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "forge_client.cli",
        "chat",
        "--project",
        project["id"],
        f"please repeat {words}",
        env={**os.environ, **cli.env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    # Printed as it arrives, the first read finds the answer's beginning but not its end
    # (a CLI that printed the answer at once would hand over all of it in one piece).
    first = await asyncio.wait_for(proc.stdout.read(65536), 30)
    assert first
    assert b"word59" not in first
    rest = await asyncio.wait_for(proc.stdout.read(), 60)
    assert await proc.wait() == 0
    answer = (first + rest).decode()
    assert "word0" in answer
    assert "word59" in answer

    usage = await cli.json("usage")
    assert int(usage["outputTokens"]) > 0
    table = await cli("usage")
    assert "echo" in table.stdout


async def test_run_start_watch_approve_and_cancel(cli: Cli) -> None:
    project = await cli.json("projects", "create", "runs")
    run = await cli.json("run", "start", project["id"], GOAL, "--approval", "bash", "--no-watch")
    watched = await cli.json("run", "watch", run["id"], "--yes")
    events = watched["events"]
    assert [int(event["seq"]) for event in events] == list(range(1, len(events) + 1))
    assert "completed" in events[-1]
    assert any("approval" in event for event in events)
    assert any("exec" in event for event in events)

    # Without --json, the same run as a tree.
    tree = await cli("run", "watch", run["id"])
    assert tree.exit_code == 0, tree.stderr
    assert "tool bash" in tree.stdout
    assert "hello from the cli" in tree.stdout

    waiting = await cli.json(
        "run", "start", project["id"], GOAL, "--approval", "bash", "--no-watch"
    )
    cancelled = await cli.json("run", "cancel", waiting["id"])
    assert cancelled["id"] == waiting["id"]


async def test_sandbox_exec_streams_output_and_passes_the_exit_code(cli: Cli) -> None:
    project = await cli.json("projects", "create", "sandboxed")
    made = await cli.json("sandbox", "create", project["id"])

    hi = await cli("sandbox", "exec", "-s", made["id"], "--", "echo", "hi")
    assert hi.exit_code == 0, hi.stderr
    assert hi.stdout == "hi\n"

    failed = await cli("sandbox", "exec", "-s", made["id"], "--", "false")
    assert failed.exit_code == 1

    three = await cli(
        "sandbox",
        "exec",
        "-s",
        made["id"],
        "--json",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    )
    assert three.exit_code == 3
    result = json.loads(three.stdout)
    assert result["exit_code"] == 3
    assert result["stdout"] == "out\n"
    assert result["stderr"] == "err\n"


async def test_artifacts_push_and_pull(cli: Cli, tmp_path: Path) -> None:
    project = await cli.json("projects", "create", "artifacts")
    source = tmp_path / "notes.txt"
    content = ("line of notes\n" * 20000).encode()
    source.write_bytes(content)

    pushed = await cli.json("artifacts", "push", project["id"], str(source))
    assert pushed["filename"] == "notes.txt"
    listed = await cli.json("artifacts", "list", project["id"])
    assert [item["id"] for item in listed] == [pushed["id"]]

    target = tmp_path / "pulled.txt"
    pulled = await cli.json("artifacts", "pull", pushed["id"], "-o", str(target))
    assert pulled["bytes"] == len(content)
    assert target.read_bytes() == content


async def test_artifacts_push_a_directory_as_a_tree_and_archive_it(
    cli: Cli, tmp_path: Path
) -> None:
    project = await cli.json("projects", "create", "trees")
    root = tmp_path / "app"
    (root / "src").mkdir(parents=True)
    (root / "package.json").write_bytes(b'{"name": "app"}\n')
    (root / "src" / "App.tsx").write_bytes(b"export default () => null;\n")
    (root / "linked").symlink_to(root / "package.json")

    pushed = await cli.json("artifacts", "push", project["id"], str(root))
    assert (pushed["kind"], pushed["filename"]) == ("ARTIFACT_KIND_TREE", "app")
    files = await cli.json("artifacts", "files", pushed["id"])
    assert [item["path"] for item in files] == ["package.json", "src/App.tsx"]

    for flags, name in (((), "app.zip"), (("--tar",), "app.tar.gz")):
        target = tmp_path / name
        written = await cli.json("artifacts", "archive", pushed["id"], *flags, "-o", str(target))
        assert written["bytes"] == target.stat().st_size
        if name.endswith(".zip"):
            with zipfile.ZipFile(target) as archive:
                assert archive.read("src/App.tsx") == b"export default () => null;\n"
        else:
            with tarfile.open(target) as archive:
                assert sorted(archive.getnames()) == ["package.json", "src/App.tsx"]


async def test_the_console_script_and_shell_completion_are_installed() -> None:
    assert (Path(sys.executable).parent / "forge").exists()
    runner = CliRunner()
    result = await asyncio.to_thread(runner.invoke, app, ["--help"])
    assert "--install-completion" in result.stdout
    assert "sandbox" in result.stdout
