"""forge.projects.v1.ProjectService: projects, members, kanban tasks, and the access rule."""
