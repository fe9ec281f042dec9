// The kanban board: a project's tasks in their status columns (ListTasks returns them in
// column and position order). Cards move with buttons (MoveTask).
import { type Task, TaskStatus } from "@forge/client/gen/forge/projects/v1/projects_pb";

import type { ViewContext } from "../context.js";
import { field, h, mount } from "../dom.js";

const COLUMNS: readonly [TaskStatus, string][] = [
  [TaskStatus.TODO, "To do"],
  [TaskStatus.IN_PROGRESS, "In progress"],
  [TaskStatus.REVIEW, "Review"],
  [TaskStatus.DONE, "Done"],
];

export async function boardView(ctx: ViewContext, projectId: string): Promise<void> {
  const { api, root, signal } = ctx;
  const board = h("div", { class: "board", id: "board" });
  const form = h(
    "form",
    { class: "row", id: "new-task" },
    h("input", { name: "title", placeholder: "New task", required: true, maxlength: 500 }),
    h("button", { type: "submit", class: "primary" }, "Add task"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const title = field<HTMLInputElement>(form, "title");
    api.projects
      .createTask({ projectId, task: { title: title.value.trim(), status: TaskStatus.TODO } }, { signal })
      .then(() => {
        title.value = "";
        return load();
      })
      .catch(ctx.notify);
  });
  mount(root, form, board);

  async function move(task: Task, status: TaskStatus): Promise<void> {
    await api.projects.moveTask({ projectId, taskId: task.id, status }, { signal });
    await load();
  }

  function card(task: Task): HTMLElement {
    const index = COLUMNS.findIndex(([status]) => status === task.status);
    const before = COLUMNS[index - 1];
    const after = COLUMNS[index + 1];
    return h(
      "article",
      { class: "task", "data-task-id": task.id },
      h("div", {}, task.title),
      task.description ? h("p", { class: "muted" }, task.description) : null,
      h(
        "div",
        { class: "row end" },
        before &&
          h("button", { title: `Move to ${before[1]}`, onclick: () => void move(task, before[0]).catch(ctx.notify) }, "◀"),
        after &&
          h("button", { title: `Move to ${after[1]}`, onclick: () => void move(task, after[0]).catch(ctx.notify) }, "▶"),
      ),
    );
  }

  async function load(): Promise<void> {
    const tasks: Task[] = [];
    let pageToken = "";
    do {
      const page = await api.projects.listTasks({ projectId, pageSize: 200, pageToken }, { signal });
      tasks.push(...page.tasks);
      pageToken = page.nextPageToken;
    } while (pageToken && tasks.length < 1000);
    mount(
      board,
      ...COLUMNS.map(([status, title]) => {
        const mine = tasks.filter((t) => t.status === status);
        return h(
          "section",
          { class: "column", "data-status": TaskStatus[status] },
          h("h3", {}, title, h("span", { class: "count" }, String(mine.length))),
          ...mine.map(card),
        );
      }),
    );
  }

  await load();
}
