"""`forge chat` (tokens printed as they arrive) and `forge run start/watch/approve/cancel`
(a live tree of the run's steps, tool calls and exec output, with an approval prompt)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.tree import Tree

from forge_client._proto.forge.agents import v1 as agents_v1
from forge_client.streams import kind
from forge_client.sync import Forge

from .session import JsonOption, client, console, handles_errors, print_json, to_data

runs = typer.Typer(help="Agent runs: start, watch, approve, cancel.", no_args_is_help=True)

APPROVAL_MODES = {
    "auto": agents_v1.ApprovalMode.AUTO,
    "bash": agents_v1.ApprovalMode.ASK_BEFORE_BASH,
    "writes": agents_v1.ApprovalMode.ASK_BEFORE_WRITES,
}


@handles_errors
def chat(
    ctx: typer.Context,
    message: Annotated[str, typer.Argument(help="What to say.")],
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Start a new conversation here.")
    ] = None,
    conversation: Annotated[
        str | None, typer.Option("--conversation", "-c", help="Continue this conversation.")
    ] = None,
    model: Annotated[str, typer.Option(help="Model for this answer.")] = "",
    json: JsonOption = False,
) -> None:
    """Send a message and print the answer's tokens as they arrive."""
    if not (project or conversation):
        raise typer.BadParameter("give --project or --conversation")
    text: list[str] = []
    data: dict[str, Any] = {}
    with client(ctx) as forge:
        if conversation is None:
            created = forge.agents.create_conversation(
                agents_v1.CreateConversationRequest(
                    project_id=project or "",
                    conversation=agents_v1.Conversation(title=message[:60]),
                )
            )
            conversation = created.id
            if not json:
                typer.echo(f"(conversation {conversation})", err=True)
        for event in forge.chat(conversation, message, model=model):
            what = kind(event)
            if what == "delta" and event.delta is not None:
                text.append(event.delta.text)
                if not json:
                    sys.stdout.write(event.delta.text)
                    sys.stdout.flush()
            elif what in ("usage", "completed", "error"):
                data[what] = to_data(getattr(event, what))
    if json:
        print_json({"conversation_id": conversation, "text": "".join(text), **data})
    else:
        sys.stdout.write("\n")


@runs.command("start")
@handles_errors
def start(
    ctx: typer.Context,
    project_id: str,
    goal: str,
    agent: Annotated[str, typer.Option(help="Agent profile id.")] = "coder",
    approval: Annotated[
        str, typer.Option(help="auto, bash (ask before bash) or writes (ask before writes).")
    ] = "auto",
    task: Annotated[str, typer.Option(help="Task the run works on.")] = "",
    model: Annotated[str, typer.Option(help="Model of the run.")] = "",
    watch: Annotated[bool, typer.Option(help="Follow the run until it ends.")] = True,
    yes: Annotated[bool, typer.Option("--yes", help="Approve every tool call.")] = False,
    json: JsonOption = False,
) -> None:
    """Start an agent run toward a goal (and watch it)."""
    if approval not in APPROVAL_MODES:
        raise typer.BadParameter(f"one of {', '.join(APPROVAL_MODES)}", param_hint="--approval")
    with client(ctx) as forge:
        run = forge.agents.start_run(
            agents_v1.StartRunRequest(
                project_id=project_id,
                agent_id=agent,
                goal=goal,
                task_id=task,
                model=model,
                approval_mode=APPROVAL_MODES[approval],
            )
        )
        if not watch:
            if json:
                print_json(to_data(run))
            else:
                console().print(f"Started run {run.id}")
            return
        follow(forge, run.id, 0, json=json, yes=yes)


@runs.command("watch")
@handles_errors
def watch(
    ctx: typer.Context,
    run_id: str,
    after_seq: Annotated[int, typer.Option(help="Only events after this seq.")] = 0,
    yes: Annotated[bool, typer.Option("--yes", help="Approve every tool call.")] = False,
    json: JsonOption = False,
) -> None:
    """Follow a run live: steps, tool calls, exec output; asks before waiting tool calls."""
    with client(ctx) as forge:
        follow(forge, run_id, after_seq, json=json, yes=yes)


@runs.command("approve")
@handles_errors
def approve(
    ctx: typer.Context,
    run_id: str,
    deny: Annotated[bool, typer.Option("--deny", help="Deny instead.")] = False,
    reason: Annotated[str, typer.Option(help="Why (the model sees it).")] = "",
    json: JsonOption = False,
) -> None:
    """Approve (or deny) the tool call the run is waiting on."""
    with client(ctx) as forge:
        run = forge.agents.get_run(agents_v1.GetRunRequest(run_id=run_id))
        if run.pending_tool_call is None:
            raise typer.BadParameter("the run is not waiting for an approval", param_hint="RUN_ID")
        run = answer(forge, run, approve=not deny, reason=reason)
    if json:
        print_json(to_data(run))
    else:
        console().print(f"{'Denied' if deny else 'Approved'}; the run is {run.status.name.lower()}")


@runs.command("cancel")
@handles_errors
def cancel(ctx: typer.Context, run_id: str, json: JsonOption = False) -> None:
    """Cancel a run."""
    with client(ctx) as forge:
        run = forge.agents.cancel_run(agents_v1.CancelRunRequest(run_id=run_id))
    if json:
        print_json(to_data(run))
    else:
        console().print(f"Run {run.id} is {run.status.name.lower()}")


def answer(forge: Forge, run: agents_v1.Run, *, approve: bool, reason: str = "") -> agents_v1.Run:
    assert run.pending_tool_call is not None
    return forge.agents.approve_tool_call(
        agents_v1.ApproveToolCallRequest(
            run_id=run.id, tool_call_id=run.pending_tool_call.id, approve=approve, reason=reason
        )
    )


class RunTree:
    """The run as a rich Tree: model text, tool calls with their exec output and result."""

    def __init__(self, run_id: str) -> None:
        self.tree = Tree(f"[bold]run {run_id}[/bold]")
        self.status = self.tree.add("status: …")
        self._text: tuple[Tree, list[str]] | None = None
        self._tool: Tree | None = None
        self._output: tuple[Tree, list[str]] | None = None

    @staticmethod
    def _append(node: tuple[Tree, list[str]], text: str) -> None:
        node[1].append(text)
        node[0].label = escape("".join(node[1]).rstrip()[-2000:])

    def add(self, event: agents_v1.RunEvent) -> None:
        what = kind(event)
        if what == "status" and event.status is not None:
            label = f"status: {event.status.status.name.lower()} {event.status.message}"
            self.status.label = escape(label)
        elif what == "delta" and event.delta is not None:
            if self._text is None:
                self._text = (self.tree.add(""), [])
            self._append(self._text, event.delta.text)
        elif what == "tool_call" and event.tool_call is not None:
            self._text = self._output = None
            call = event.tool_call
            self._tool = self.tree.add(escape(f"tool {call.name} {call.arguments[:120]}"))
        elif what == "exec" and event.exec is not None and self._tool is not None:
            chunk = event.exec.stdout or event.exec.stderr
            if chunk:
                if self._output is None:
                    self._output = (self._tool.add(""), [])
                self._append(self._output, chunk.decode(errors="replace"))
            elif event.exec.exit is not None:
                self._tool.add(f"exit {event.exec.exit.exit_code}")
        elif what == "tool_result" and event.tool_result is not None and self._tool is not None:
            mark = "error" if event.tool_result.is_error else "ok"
            self._tool.add(escape(f"{mark}: {event.tool_result.content[:200]}"))
            self._tool = None
        elif what == "approval" and event.approval is not None:
            self.tree.add("approved" if event.approval.approved else "denied")
        elif what == "completed" and event.completed is not None:
            done = event.completed
            self.tree.add(escape(f"done ({done.status.name.lower()}): {done.result[:300]}"))
        elif what == "error" and event.error is not None:
            self.tree.add(escape(f"failed: {event.error.message}"))


def waits_for_approval(event: agents_v1.RunEvent) -> bool:
    return (
        kind(event) == "status"
        and event.status is not None
        and event.status.status == agents_v1.RunStatus.WAITING_FOR_APPROVAL
    )


def follow(forge: Forge, run_id: str, after_seq: int, *, json: bool, yes: bool) -> None:
    """Prints the run live until it ends (or, with --json, its events at the end)."""
    if json:
        events: list[dict[str, Any]] = []
        for event in forge.watch_run(run_id, after_seq=after_seq):
            events.append(to_data(event))
            if yes and waits_for_approval(event):
                decide(forge, run_id, yes=True)
        print_json({"run_id": run_id, "events": events})
        return
    view = RunTree(run_id)
    interactive = sys.stdin.isatty()
    with Live(view.tree, console=console(), refresh_per_second=8) as live:
        for event in forge.watch_run(run_id, after_seq=after_seq):
            view.add(event)
            live.refresh()
            if waits_for_approval(event) and (yes or interactive):
                live.stop()
                decide(forge, run_id, yes=yes)
                live.start()


def decide(forge: Forge, run_id: str, *, yes: bool) -> None:
    run = forge.agents.get_run(agents_v1.GetRunRequest(run_id=run_id))
    call = run.pending_tool_call
    if call is None:
        return
    approved = yes or typer.confirm(f"Run {call.name} {call.arguments[:200]}?", default=False)
    answer(forge, run, approve=approved, reason="" if approved else "denied from the CLI")
