"""SandboxService: isolated containers per project, files in them, streamed executions."""
