// Agent runs: start one, list them, and follow one live (WatchRun) as a timeline, with
// Approve/Deny when the run waits for approval of a tool call, and Cancel.
import {
  ApprovalMode,
  type Run,
  type RunEvent,
  RunStatus,
  type ToolCall,
} from "@forge/client/gen/forge/agents/v1/agents_pb";

import { describeError, isCancel } from "../api.js";
import type { ViewContext } from "../context.js";
import { field, h, mount, scrollToEnd } from "../dom.js";

const FINISHED = new Set([RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED]);

function statusName(status: RunStatus): string {
  return (RunStatus[status] ?? "UNKNOWN").toLowerCase().replaceAll("_", " ");
}

function pill(status: RunStatus): HTMLElement {
  return h("span", { class: `pill ${RunStatus[status]}`, "data-status": RunStatus[status] }, statusName(status));
}

export async function runsView(ctx: ViewContext, projectId: string): Promise<void> {
  const { api, root, signal } = ctx;
  const form = h(
    "form",
    { class: "card", id: "start-run" },
    h("h3", {}, "Start a run"),
    h("label", {}, "Agent", h("select", { name: "agent" })),
    h("label", {}, "Goal", h("textarea", { name: "goal", rows: 4, required: true })),
    h(
      "label",
      {},
      "Approval",
      h(
        "select",
        { name: "approval" },
        h("option", { value: ApprovalMode.AUTO }, "Automatic"),
        h("option", { value: ApprovalMode.ASK_BEFORE_BASH }, "Ask before running commands"),
        h("option", { value: ApprovalMode.ASK_BEFORE_WRITES }, "Ask before writes"),
      ),
    ),
    h("button", { type: "submit", class: "primary" }, "Start"),
  );
  const list = h("table", { class: "runs", id: "runs" });
  mount(root, h("div", { class: "split" }, form, h("section", {}, h("h3", {}, "Runs"), list)));

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    api.agents
      .startRun(
        {
          projectId,
          agentId: field<HTMLSelectElement>(form, "agent").value,
          goal: field<HTMLTextAreaElement>(form, "goal").value,
          approvalMode: Number(field<HTMLSelectElement>(form, "approval").value) as ApprovalMode,
        },
        { signal },
      )
      .then((run) => ctx.go(`#/p/${projectId}/runs/${run.id}`), ctx.notify);
  });

  const [agents, runs] = await Promise.all([
    api.agents.listAgents({ projectId, pageSize: 100 }, { signal }),
    api.agents.listRuns({ projectId, pageSize: 50 }, { signal }),
  ]);
  mount(field<HTMLSelectElement>(form, "agent"), ...agents.agents.map((a) => h("option", { value: a.id }, a.name)));
  mount(
    list,
    ...runs.runs.map((run: Run) =>
      h(
        "tr",
        {},
        h("td", {}, h("a", { href: `#/p/${projectId}/runs/${run.id}` }, run.goal.split("\n")[0] || run.id)),
        h("td", {}, pill(run.status)),
      ),
    ),
  );
}

export async function runView(ctx: ViewContext, projectId: string, runId: string): Promise<void> {
  const { api, root, signal } = ctx;
  const run = await api.agents.getRun({ runId }, { signal });
  const status = h("span", { id: "run-status" }, pill(run.status));
  const usage = h("span", { class: "muted" });
  const approval = h("div", { class: "approval", id: "approval", hidden: true });
  const timeline = h("ol", { class: "timeline", id: "timeline" });
  const cancel = h(
    "button",
    { id: "cancel-run", onclick: () => void api.agents.cancelRun({ runId }, { signal }).catch(ctx.notify) },
    "Cancel run",
  );
  mount(
    root,
    h("p", {}, h("a", { href: `#/p/${projectId}/runs` }, "← Runs")),
    h("h2", {}, run.goal.split("\n")[0] || "Run"),
    h("div", { class: "row" }, status, usage, cancel),
    approval,
    timeline,
  );

  const calls = new Map<string, ToolCall>();
  let text: HTMLElement | null = null; // the assistant text being streamed
  let output: HTMLElement | null = null; // the terminal of the exec being streamed
  const decoder = new TextDecoder();

  function item(kind: string, ...children: (Node | string)[]): HTMLElement {
    const li = h("li", { class: kind }, ...children);
    timeline.append(li);
    text = null;
    if (kind !== "exec") output = null;
    return li;
  }

  function setStatus(value: RunStatus): void {
    mount(status, pill(value));
    cancel.hidden = FINISHED.has(value);
  }

  function askApproval(call: ToolCall): void {
    const decide = (approve: boolean) => (): void => {
      approval.hidden = true;
      api.agents.approveToolCall({ runId, toolCallId: call.id, approve }, { signal }).catch(ctx.notify);
    };
    mount(
      approval,
      h("p", {}, "The agent wants to call ", h("code", {}, call.name), ":"),
      h("pre", {}, call.arguments),
      h(
        "div",
        { class: "row" },
        h("button", { class: "primary", id: "approve", onclick: decide(true) }, "Approve"),
        h("button", { class: "danger", id: "deny", onclick: decide(false) }, "Deny"),
      ),
    );
    approval.hidden = false;
  }

  function show(ev: RunEvent): void {
    const e = ev.event;
    switch (e.case) {
      case "status":
        setStatus(e.value.status);
        item("status", pill(e.value.status), e.value.message ? ` ${e.value.message}` : "");
        if (e.value.status === RunStatus.WAITING_FOR_APPROVAL) {
          const call = calls.get(e.value.toolCallId);
          if (call) askApproval(call);
        } else {
          approval.hidden = true;
        }
        break;
      case "delta":
        if (text === null) {
          item("text");
          text = timeline.lastElementChild as HTMLElement;
        }
        text.textContent += e.value.text;
        break;
      case "toolCall":
        calls.set(e.value.id, e.value);
        item("tool-call", h("code", {}, e.value.name), h("pre", {}, e.value.arguments));
        break;
      case "toolResult":
        item(e.value.isError ? "tool-result error" : "tool-result", h("pre", {}, e.value.content));
        break;
      case "exec": {
        const x = e.value.event;
        if (output === null) {
          output = h("pre", { class: "term" });
          item("exec", output);
        }
        if (x.case === "stdout" || x.case === "stderr") {
          output.append(h("span", { class: x.case }, decoder.decode(x.value)));
        } else if (x.case === "exit") {
          output.append(h("span", { class: "exit" }, `\n[exit ${x.value.exitCode}]`));
          output = null;
        }
        break;
      }
      case "artifact":
        item("artifact", `Artifact saved: ${e.value.title || e.value.filename}`);
        break;
      case "usage":
        usage.textContent = `${e.value.inputTokens} in · ${e.value.outputTokens} out`;
        break;
      case "approval":
        item("approval-result", e.value.approved ? "Approved" : `Denied${e.value.reason ? `: ${e.value.reason}` : ""}`);
        break;
      case "userMessage":
        item("user-message", e.value.content);
        break;
      case "summary":
        item("summary", "Transcript summarised");
        break;
      case "completed":
        setStatus(e.value.status);
        item("completed", pill(e.value.status), e.value.result ? ` ${e.value.result}` : "");
        break;
      case "error":
        item("error", e.value.message);
        break;
      default:
        break;
    }
    scrollToEnd(document.scrollingElement ?? document.body);
  }

  // Follow the run; after a dropped connection, resume after the last event seen.
  let afterSeq = 0n;
  let finished = FINISHED.has(run.status);
  setStatus(run.status);
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      for await (const ev of api.agents.watchRun({ runId, afterSeq }, { signal })) {
        afterSeq = ev.seq;
        show(ev);
        if (ev.event.case === "completed") finished = true;
      }
      return;
    } catch (err) {
      if (isCancel(err)) return;
      if (finished) return;
      item("error", `Connection lost (${describeError(err)}); reconnecting…`);
      await new Promise((resolve) => setTimeout(resolve, 1000 * Math.min(attempt + 1, 5)));
    }
  }
}
