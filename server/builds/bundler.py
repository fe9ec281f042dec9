"""Bundling a project with esbuild in a fresh node sandbox of the project.

`bundle` checks the sources, makes the sandbox, copies the sources in as one archive, runs
the image's build script within the build timeout while streaming its log lines and
diagnostics, reads the outputs back, and ends with one BuildResult. The sandbox is removed
however the build ends; closing the event stream early kills the build first.

A build that fails (bad code, a missing package, the timeout, an output too large) ends with
a FAILED result and diagnostics. Errors are raised only for a bad request (INVALID_ARGUMENT,
before any sandbox is made), for access (PERMISSION_DENIED …) and for the sandbox service
itself (UNAVAILABLE …), as the sandbox port raises them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import timedelta

from server.builds.events import (
    BuildEvent,
    BuildLog,
    BuildResult,
    BuildStatus,
    Diagnostic,
    OutputFile,
    Severity,
)
from server.builds.limits import BuildLimits
from server.builds.outputs import read_outputs
from server.builds.scratch import scratch_sandbox
from server.builds.script import (
    ARCHIVE,
    Lines,
    ScriptLine,
    ScriptReader,
    ScriptResult,
    build_command,
)
from server.builds.sources import check_sources, pack
from server.core.context import Caller
from server.core.ports import ExecChunk, ExecEnded, ScratchSandboxPort


async def bundle(
    sandbox: ScratchSandboxPort,
    caller: Caller,
    project_id: uuid.UUID,
    files: Mapping[str, bytes],
    *,
    entry: str | None,
    limits: BuildLimits,
) -> AsyncGenerator[BuildEvent, None]:
    """BuildLog and Diagnostic events as they come, then one BuildResult (always last).

    `files` maps paths relative to the project root to their content; `entry` names the
    entry point among them, or None for the first of index.tsx, index.ts, index.jsx,
    index.js, main.tsx … (also under src/), or for a project of one script, that script
    (its default export rendered into #root). Close the generator (aclosing) when done."""
    started = time.monotonic()
    check_sources(files, entry, limits)
    archive = await asyncio.to_thread(pack, files)
    yield BuildLog("starting a node sandbox")
    # The result is yielded once the sandbox is gone, so a consumer that stops there leaves
    # nothing behind.
    async with scratch_sandbox(sandbox, caller, project_id) as sandbox_id:
        await sandbox.write_file(caller, sandbox_id, ARCHIVE, archive)
        size = sum(len(content) for content in files.values())
        yield BuildLog(f"bundling {len(files)} files ({size} bytes) with esbuild")
        run = _Run()
        command = build_command(entry)
        async with aclosing(sandbox.exec(caller, sandbox_id, command, limits.timeout)) as events:
            async for event in events:
                if isinstance(event, ExecChunk):
                    for item in run.take(event):
                        yield item
                elif isinstance(event, ExecEnded):
                    run.ended = event
        for item in run.finish():
            yield item
        outputs: tuple[OutputFile, ...] = ()
        problems = run.problems(limits)
        if not problems and run.result is not None and run.succeeded:
            read = await read_outputs(sandbox, caller, sandbox_id, run.result.outputs, limits)
            outputs, problems = read.outputs, read.problems
        for problem in problems:
            yield problem
        succeeded = run.succeeded and not problems
        result = BuildResult(
            status=BuildStatus.SUCCEEDED if succeeded else BuildStatus.FAILED,
            diagnostics=(*run.diagnostics, *problems),
            outputs=outputs if succeeded else (),
            entry=run.result.entry if run.result else "",
            synthesized_entry=run.result.synthesized_entry if run.result else False,
            duration=timedelta(seconds=time.monotonic() - started),
        )
    yield result


@dataclass
class _Run:
    """What the build script reported while it ran, and how its process ended."""

    stdout: ScriptReader = field(default_factory=ScriptReader)
    stderr: Lines = field(default_factory=Lines)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    result: ScriptResult | None = None
    ended: ExecEnded | None = None

    def take(self, chunk: ExecChunk) -> list[BuildLog | Diagnostic]:
        if chunk.stream == "stderr":
            return [BuildLog(line, stderr=True) for line in self.stderr.feed(chunk.data)]
        return self._reported(self.stdout.feed(chunk.data))

    def finish(self) -> list[BuildLog | Diagnostic]:
        logs = [BuildLog(line, stderr=True) for line in self.stderr.close()]
        return logs + self._reported(self.stdout.close())

    def _reported(self, lines: list[ScriptLine]) -> list[BuildLog | Diagnostic]:
        shown: list[BuildLog | Diagnostic] = []
        for line in lines:
            if isinstance(line, ScriptResult):
                self.result = line
                continue
            if isinstance(line, Diagnostic):
                self.diagnostics.append(line)
            shown.append(line)
        return shown

    @property
    def succeeded(self) -> bool:
        return (
            self.result is not None
            and self.result.status is BuildStatus.SUCCEEDED
            and self.ended is not None
            and self.ended.reason == "exited"
            and self.ended.exit_code == 0
        )

    def problems(self, limits: BuildLimits) -> tuple[Diagnostic, ...]:
        """Why the build ended without the script's verdict, if it did."""
        ended = self.ended
        if ended is None:
            return (_error("the build process ended without an exit status"),)
        seconds = f"{limits.timeout.total_seconds():g}"
        reasons = {
            "timeout": f"the build took longer than {seconds} s and was stopped",
            "idle_timeout": f"the build took longer than {seconds} s and was stopped",
            "oom_killed": "the build ran out of memory and was stopped",
            "cancelled": "the build was cancelled",
            "killed": "the build process was killed",
            "sandbox_lost": "the build's sandbox was lost",
        }
        if ended.reason in reasons:
            return (_error(reasons[ended.reason]),)
        if self.result is None:
            if ended.output_truncated:
                return (_error("the build printed more than the output cap and was cut short"),)
            return (
                _error(f"the build script ended without a result (exit status {ended.exit_code})"),
            )
        if self.result.status is BuildStatus.FAILED and not any(
            d.severity is Severity.ERROR for d in self.diagnostics
        ):
            return (_error("the build failed without saying why"),)
        if self.result.status is BuildStatus.SUCCEEDED and ended.exit_code != 0:
            return (_error(f"the build script exited with status {ended.exit_code}"),)
        return ()


def _error(message: str) -> Diagnostic:
    return Diagnostic(Severity.ERROR, message)
