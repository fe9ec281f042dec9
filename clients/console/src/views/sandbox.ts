// A terminal-like view of sandboxes: run a snippet (RunCode, a throwaway sandbox) or a
// command in a project sandbox (Exec); stdout and stderr stream in as they are produced.
import { type ExecEvent, SandboxState } from "@forge/client/gen/forge/sandbox/v1/sandbox_pb";

import { describeError, isCancel } from "../api.js";
import type { ViewContext } from "../context.js";
import { field, h, mount, scrollToEnd } from "../dom.js";

const SAMPLES: Record<string, string> = {
  python: 'print("hello from the sandbox")',
  javascript: 'console.log("hello from the sandbox")',
  typescript: 'console.log("hello from the sandbox")',
  bash: 'echo "hello from the sandbox"',
};

/** Writes an Exec/RunCode stream into a <pre>; resolves with the exit code (null if none). */
async function stream(events: AsyncIterable<ExecEvent>, term: HTMLElement): Promise<number | null> {
  const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
  term.replaceChildren();
  term.dataset.state = "running";
  let code: number | null = null;
  try {
    for await (const ev of events) {
      const e = ev.event;
      if (e.case === "stdout" || e.case === "stderr") {
        term.append(h("span", { class: e.case }, decoders[e.case].decode(e.value, { stream: true })));
      } else if (e.case === "exit") {
        code = e.value.exitCode;
        const seconds = e.value.duration ? Number(e.value.duration.seconds) + e.value.duration.nanos / 1e9 : 0;
        const notes = [e.value.timedOut && "timed out", e.value.oomKilled && "out of memory", e.value.outputTruncated && "output truncated"];
        term.append(
          h("span", { class: "exit" }, `\n[exit ${code} in ${seconds.toFixed(2)}s${notes.filter(Boolean).map((n) => `, ${n}`).join("")}]`),
        );
      } else if (e.case === "error") {
        term.append(h("span", { class: "stderr" }, `\n[error] ${e.value.message}`));
      }
      scrollToEnd(term);
    }
    term.dataset.state = "exited";
  } catch (err) {
    if (isCancel(err)) return code;
    term.dataset.state = "failed";
    term.append(h("span", { class: "stderr" }, `\n[${describeError(err)}]`));
  }
  return code;
}

export async function sandboxView(ctx: ViewContext, projectId: string): Promise<void> {
  const { api, root, signal } = ctx;

  // --- RunCode: a snippet in a fresh sandbox ---
  const codeTerm = h("pre", { class: "term", id: "runcode-output" });
  const codeForm = h(
    "form",
    { class: "card", id: "runcode" },
    h("h3", {}, "Run a snippet"),
    h("label", {}, "Language", h("select", { name: "language" })),
    h("textarea", { name: "code", rows: 6, class: "mono", value: SAMPLES.python }),
    h("button", { type: "submit", class: "primary" }, "Run"),
    codeTerm,
  );
  codeForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const language = field<HTMLSelectElement>(codeForm, "language").value;
    const code = field<HTMLTextAreaElement>(codeForm, "code").value;
    void stream(api.sandbox.runCode({ projectId, language, code }, { signal }), codeTerm);
  });

  // --- Exec: commands in a project sandbox ---
  const execTerm = h("pre", { class: "term", id: "exec-output" });
  const execForm = h(
    "form",
    { class: "card", id: "exec" },
    h("h3", {}, "Sandbox shell"),
    h(
      "div",
      { class: "row" },
      h("select", { name: "sandbox" }),
      h("select", { name: "runtime" }),
      h("button", { type: "button", id: "new-sandbox", onclick: () => void createSandbox() }, "New sandbox"),
    ),
    h(
      "div",
      { class: "row" },
      h("span", { class: "prompt" }, "$"),
      h("input", { name: "command", class: "mono grow", placeholder: "ls -la", autocomplete: "off" }),
      h("button", { type: "submit", class: "primary" }, "Exec"),
    ),
    execTerm,
  );
  execForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const sandboxId = field<HTMLSelectElement>(execForm, "sandbox").value;
    const shell = field<HTMLInputElement>(execForm, "command").value;
    if (!sandboxId) {
      ctx.notify(new Error("create a sandbox first"));
      return;
    }
    void stream(api.sandbox.exec({ sandboxId, shell }, { signal }), execTerm);
  });

  mount(root, h("div", { class: "split even" }, codeForm, execForm));

  async function loadSandboxes(selected?: string): Promise<void> {
    const page = await api.sandbox.listSandboxes({ projectId, pageSize: 50, state: SandboxState.RUNNING }, { signal });
    mount(
      field<HTMLSelectElement>(execForm, "sandbox"),
      ...page.sandboxes.map((s) => h("option", { value: s.id, selected: s.id === selected }, `${s.runtime} · ${s.id.slice(-6)}`)),
    );
  }

  async function createSandbox(): Promise<void> {
    const runtime = field<HTMLSelectElement>(execForm, "runtime").value;
    try {
      const sandbox = await api.sandbox.createSandbox({ projectId, sandbox: { runtime } }, { signal });
      await loadSandboxes(sandbox.id);
    } catch (err) {
      ctx.notify(err);
    }
  }

  const runtimes = await api.sandbox.listRuntimes({ pageSize: 50 }, { signal });
  const language = field<HTMLSelectElement>(codeForm, "language");
  const languages = [...new Set(runtimes.runtimes.map((r) => r.languages[0]).filter((l) => l !== undefined))];
  mount(language, ...languages.map((l) => h("option", { value: l, selected: l === "python" }, l)));
  language.addEventListener("change", () => {
    const code = field<HTMLTextAreaElement>(codeForm, "code");
    // Swap the sample for the new language's, unless the user wrote code of their own.
    if (Object.values(SAMPLES).includes(code.value) || !code.value.trim()) {
      code.value = SAMPLES[language.value] ?? "";
    }
  });
  mount(
    field<HTMLSelectElement>(execForm, "runtime"),
    ...runtimes.runtimes.map((r) => h("option", { value: r.name }, r.displayName || r.name)),
  );
  await loadSandboxes();
}
