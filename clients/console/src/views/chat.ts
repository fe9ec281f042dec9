// Conversations of a project, and a chat whose answer streams in token by token (the Chat
// server stream over gRPC-Web through Envoy).
import {
  type Message,
  MessageRole,
} from "@forge/client/gen/forge/agents/v1/agents_pb";

import { describeError, isCancel } from "../api.js";
import type { ViewContext } from "../context.js";
import { field, h, mount, scrollToEnd } from "../dom.js";

export async function chatView(ctx: ViewContext, projectId: string, conversationId?: string): Promise<void> {
  const { api, root, signal } = ctx;
  const conversations = h("ul", { class: "list", id: "conversations" });
  const pane = h("div", { class: "chat-pane" });
  const create = h(
    "button",
    {
      id: "new-conversation",
      onclick: () =>
        void api.agents
          .createConversation({ projectId, conversation: { title: "New conversation" } }, { signal })
          .then((c) => ctx.go(`#/p/${projectId}/chat/${c.id}`), ctx.notify),
    },
    "New conversation",
  );
  mount(root, h("div", { class: "split" }, h("aside", {}, create, conversations), pane));

  const list = await api.agents.listConversations({ projectId, pageSize: 50 }, { signal });
  mount(
    conversations,
    ...list.conversations.map((c) =>
      h(
        "li",
        { class: c.id === conversationId ? "current" : undefined },
        h("a", { href: `#/p/${projectId}/chat/${c.id}` }, c.title || "Untitled"),
      ),
    ),
  );
  if (!conversationId) {
    mount(pane, h("p", { class: "muted" }, "Pick a conversation or start a new one."));
    return;
  }
  await conversation(ctx, conversationId, pane);
}

function bubble(role: "user" | "assistant", text: string, status: string): HTMLElement {
  return h("article", { class: `msg ${role}`, "data-status": status }, h("div", { class: "text" }, text));
}

async function conversation(ctx: ViewContext, conversationId: string, pane: HTMLElement): Promise<void> {
  const { api, signal } = ctx;
  const log = h("div", { class: "messages", id: "messages" });
  const form = h(
    "form",
    { class: "composer", id: "composer" },
    h("textarea", { name: "content", rows: 3, required: true, placeholder: "Ask the agent…" }),
    h("button", { type: "submit", class: "primary" }, "Send"),
  );
  mount(pane, log, form);

  const shown = (m: Message): boolean => m.role === MessageRole.USER || m.role === MessageRole.ASSISTANT;
  let pageToken = "";
  do {
    const page = await api.agents.listMessages({ conversationId, pageSize: 200, pageToken }, { signal });
    for (const m of page.messages.filter(shown)) {
      log.append(bubble(m.role === MessageRole.USER ? "user" : "assistant", m.content, "complete"));
    }
    pageToken = page.nextPageToken;
  } while (pageToken);
  scrollToEnd(log);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = field<HTMLTextAreaElement>(form, "content");
    const content = input.value.trim();
    if (!content) return;
    input.value = "";
    void send(content);
  });

  async function send(content: string): Promise<void> {
    const button = form.querySelector("button");
    button?.setAttribute("disabled", "");
    log.append(bubble("user", content, "complete"));
    const answer = bubble("assistant", "", "streaming");
    const text = answer.querySelector(".text") as HTMLElement;
    const meta = h("div", { class: "meta muted" });
    answer.append(meta);
    log.append(answer);
    scrollToEnd(log);
    try {
      for await (const ev of api.agents.chat({ conversationId, content }, { signal })) {
        switch (ev.event.case) {
          case "started":
            meta.textContent = ev.event.value.model;
            break;
          case "delta":
            text.textContent += ev.event.value.text;
            scrollToEnd(log);
            break;
          case "usage":
            meta.textContent = `${meta.textContent ?? ""} · ${ev.event.value.outputTokens} tokens`;
            break;
          case "error":
            answer.dataset.status = "failed";
            answer.append(h("p", { class: "error" }, ev.event.value.message));
            break;
          case "completed":
            answer.dataset.status = "complete";
            break;
          default:
            break;
        }
      }
      if (answer.dataset.status === "streaming") answer.dataset.status = "interrupted";
    } catch (err) {
      if (isCancel(err)) return;
      answer.dataset.status = "failed";
      answer.append(h("p", { class: "error" }, describeError(err)));
    } finally {
      button?.removeAttribute("disabled");
    }
  }
}
