// The console's shell: sign-in gate, header, notices and a hash router over the views.
import { anonymousApi, describeError, isCancel, sessionApi } from "./api.js";
import type { ViewContext } from "./context.js";
import { h, mount } from "./dom.js";
import { clearSession, loadSession, saveSession } from "./session.js";
import { boardView } from "./views/board.js";
import { chatView } from "./views/chat.js";
import { projectsView } from "./views/projects.js";
import { runsView, runView } from "./views/runs.js";
import { sandboxView } from "./views/sandbox.js";
import { signInView } from "./views/signin.js";

const TABS = [
  ["board", "Board"],
  ["chat", "Chat"],
  ["runs", "Runs"],
  ["sandbox", "Sandbox"],
] as const;

const app = document.getElementById("app") ?? document.body;
const notice = h("div", { class: "notice", id: "notice", role: "alert", hidden: true });
const who = h("span", { class: "who", id: "who" });
const view = h("main", { id: "view" });
let current: AbortController | null = null;

const api = sessionApi(() => showSignIn());

function notify(err: unknown): void {
  if (isCancel(err)) return;
  notice.textContent = describeError(err);
  notice.hidden = false;
}

function signOut(): void {
  const session = loadSession();
  clearSession();
  if (session) void anonymousApi().auth.logout({ refreshToken: session.refreshToken }).catch(() => undefined);
  showSignIn();
}

function showSignIn(): void {
  current?.abort();
  signInView(app, anonymousApi(), (session) => {
    saveSession(session);
    showShell();
  });
}

function showShell(): void {
  const session = loadSession();
  if (session === null) return showSignIn();
  who.textContent = session.email;
  mount(
    app,
    h(
      "header",
      { class: "top" },
      h("a", { href: "#/", class: "brand" }, "Forge console"),
      h("span", { class: "grow" }),
      who,
      h("button", { id: "sign-out", onclick: signOut }, "Sign out"),
    ),
    notice,
    view,
  );
  void route();
}

async function projectFrame(ctx: ViewContext, projectId: string, tab: string): Promise<ViewContext> {
  const body = h("div", { class: "tab-body" });
  const title = h("h1", {}, "…");
  mount(
    ctx.root,
    title,
    h(
      "nav",
      { class: "tabs" },
      ...TABS.map(([key, label]) =>
        h("a", { href: `#/p/${projectId}/${key}`, class: key === tab ? "current" : undefined, id: `tab-${key}` }, label),
      ),
    ),
    body,
  );
  void ctx.api.projects.getProject({ projectId }, { signal: ctx.signal }).then((p) => {
    title.textContent = p.name;
  }, ctx.notify);
  return { ...ctx, root: body };
}

async function route(): Promise<void> {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  notice.hidden = true;
  const ctx: ViewContext = {
    api,
    root: view,
    signal: controller.signal,
    notify,
    go: (hash) => {
      location.hash = hash;
    },
  };
  const [, section, projectId, tab, id] = location.hash.replace(/^#/, "").split("/");
  try {
    if (section !== "p" || !projectId) {
      await projectsView(ctx);
      return;
    }
    const inner = await projectFrame(ctx, projectId, tab ?? "board");
    if (tab === "chat") await chatView(inner, projectId, id);
    else if (tab === "runs" && id) await runView(inner, projectId, id);
    else if (tab === "runs") await runsView(inner, projectId);
    else if (tab === "sandbox") await sandboxView(inner, projectId);
    else await boardView(inner, projectId);
  } catch (err) {
    notify(err);
  }
}

window.addEventListener("hashchange", () => {
  if (loadSession() !== null) void route();
});
showShell();
