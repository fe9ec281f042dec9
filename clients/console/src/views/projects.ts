// The caller's projects, and a form to create one.
import type { Project } from "@forge/client/gen/forge/projects/v1/projects_pb";

import type { ViewContext } from "../context.js";
import { field, h, mount } from "../dom.js";

export async function projectsView(ctx: ViewContext): Promise<void> {
  const { api, root, signal } = ctx;
  const form = h(
    "form",
    { class: "row", id: "new-project" },
    h("input", { name: "name", placeholder: "New project name", required: true, maxlength: 200 }),
    h("button", { type: "submit", class: "primary" }, "Create project"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = field<HTMLInputElement>(form, "name").value.trim();
    api.projects
      .createProject({ project: { name } }, { signal })
      .then((project) => ctx.go(`#/p/${project.id}/board`), ctx.notify);
  });
  const list = h("ul", { class: "list", id: "projects" }, h("li", { class: "muted" }, "Loading…"));
  mount(root, h("h1", {}, "Projects"), form, list);

  const projects: Project[] = [];
  let pageToken = "";
  do {
    const page = await api.projects.listProjects({ pageSize: 100, pageToken }, { signal });
    projects.push(...page.projects);
    pageToken = page.nextPageToken;
  } while (pageToken && projects.length < 500);
  mount(
    list,
    ...projects.map((p) =>
      h(
        "li",
        {},
        h("a", { href: `#/p/${p.id}/board`, class: "project-link" }, p.name),
        p.description ? h("span", { class: "muted" }, ` — ${p.description}`) : null,
      ),
    ),
    projects.length === 0 ? h("li", { class: "muted" }, "No projects yet.") : null,
  );
}
