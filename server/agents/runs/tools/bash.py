"""`bash`: runs a command in the run's sandbox; its output is streamed as exec events while
it runs and summarised for the model when it ends."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import aclosing
from datetime import timedelta
from typing import Any

from server.agents.runs.events import ExecReported
from server.agents.runs.tools.base import Tool, ToolContext, ToolOutcome
from server.agents.runs.tools.output import OutputCollector, clip
from server.config import Settings
from server.core.ports import ExecChunk, ExecEnded


class BashTool(Tool):
    name = "bash"
    description = (
        "Runs a shell command with `bash -lc` in the run's sandbox, in /workspace (a Linux "
        "container with python3 and node). Returns the exit status and the combined stdout "
        "and stderr. Each call starts a fresh shell: `cd` and variables do not carry over. "
        "Do not start commands that wait for input or never end."
    )
    may_write = True

    def __init__(self, settings: Settings) -> None:
        self._max_timeout = settings.run_bash_timeout_seconds

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "command": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The command line, e.g. `python3 main.py`.",
                },
                "timeout_seconds": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": self._max_timeout,
                    "description": "Wall-clock limit; the command is killed after it "
                    f"(default and maximum {self._max_timeout:g}).",
                },
            },
            "required": ["command"],
            "additionalProperties": False,
        }

    async def run(self, ctx: ToolContext, arguments: Mapping[str, Any]) -> ToolOutcome:
        port = ctx.ports.sandbox.get()
        sandbox_id = await ctx.sandbox()
        timeout = float(arguments.get("timeout_seconds", self._max_timeout))
        limit = ctx.settings.run_tool_output_chars
        output = OutputCollector(limit)
        ended: ExecEnded | None = None
        # Closing the stream (also when this task is cancelled) kills the process group.
        async with aclosing(
            port.exec(ctx.caller, sandbox_id, arguments["command"], timedelta(seconds=timeout))
        ) as events:
            async for event in events:
                await ctx.emit(ExecReported(event))
                if isinstance(event, ExecChunk):
                    output.add(event.data)
                elif isinstance(event, ExecEnded):
                    ended = event
        return _outcome(ended, output, limit)


def _outcome(ended: ExecEnded | None, output: OutputCollector, limit: int) -> ToolOutcome:
    if ended is None:
        status, failed = "the command ended without an exit status", True
    else:
        status, failed = _status(ended)
    full = output.text()
    body = clip(full, limit) if full else "(no output)"
    notes = []
    if ended is not None and ended.output_truncated:
        notes.append("the sandbox stopped capturing output at its limit")
    if output.omitted or len(full) > limit:
        notes.append(f"output shown truncated to {limit} characters")
    header = status + "".join(f"; {note}" for note in notes)
    return ToolOutcome(f"{header}\n{body}", is_error=failed)


def _status(ended: ExecEnded) -> tuple[str, bool]:
    seconds = ended.duration.total_seconds()
    if ended.reason == "exited":
        return f"exit code {ended.exit_code} ({seconds:.2f}s)", ended.exit_code != 0
    described = {
        "timeout": "timed out and was killed",
        "idle_timeout": "was killed after producing no output for too long",
        "cancelled": "was cancelled",
        "oom_killed": "was killed: out of memory",
        "killed": "was killed",
        "sandbox_lost": "was killed: the sandbox's container stopped",
    }[ended.reason]
    signal = f", signal {ended.signal}" if ended.signal else ""
    return f"the command {described} (exit code {ended.exit_code}{signal}, {seconds:.2f}s)", True
