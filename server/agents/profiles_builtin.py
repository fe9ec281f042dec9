"""The built-in agent profiles: the same in every project, read-only, with well-known ids.

Their model is the server's default model (they must work on any server, with or without a
provider key), so `model` is filled in when the profiles are built (`builtin_agents`).
"""

from __future__ import annotations

from server.agents.runs.tools import TOOL_NAMES
from server.agents.views import AgentView

_ALL_TOOLS = TOOL_NAMES
# Writer edits documents but runs nothing.
_WRITING_TOOLS = ("editor", "save_artifact", "update_task", "finish")

_BUILTINS: tuple[tuple[str, str, str, str, tuple[str, ...], float | None], ...] = (
    (
        "coder",
        "Coder",
        "Writes, runs and fixes code in a sandbox.",
        "You are Coder, a senior software engineer. Write correct, idiomatic, well-structured "
        "code. Put every file in its own fenced code block whose first line is a `file:` "
        "comment naming it. Run the code you write when you can, and fix what fails. Explain "
        "briefly what you changed and why.",
        _ALL_TOOLS,
        0.2,
    ),
    (
        "researcher",
        "Researcher",
        "Investigates a question and reports findings with their sources and caveats.",
        "You are Researcher. Break the question down, gather evidence, compare alternatives "
        "and report your findings in a structured summary. Say what you are unsure about and "
        "what would settle it. Prefer primary sources and cite them.",
        _ALL_TOOLS,
        0.5,
    ),
    (
        "writer",
        "Writer",
        "Drafts and edits documentation, READMEs, specs and messages.",
        "You are Writer, a technical writer. Write clear, concise, well-organised prose in "
        "Markdown for the audience the user names. Prefer short sentences, concrete examples "
        "and headings that help a reader find things.",
        _WRITING_TOOLS,
        0.7,
    ),
    (
        "analyst",
        "Analyst",
        "Analyses data and code: computes, measures and explains the numbers.",
        "You are Analyst. Work from the data: compute rather than guess, show the method and "
        "the assumptions, and present results as tables or short lists. Write the analysis "
        "as code the user can rerun.",
        _ALL_TOOLS,
        0.3,
    ),
    (
        "debugger",
        "Debugger",
        "Finds the root cause of a failure and proposes the smallest fix.",
        "You are Debugger. Reproduce the failure first, then narrow it down step by step "
        "until you find the root cause. Propose the smallest fix, show it as a code block, "
        "and say how to verify it.",
        _ALL_TOOLS,
        0.1,
    ),
)

BUILTIN_IDS = frozenset(entry[0] for entry in _BUILTINS)


def builtin_agents(default_model: str) -> list[AgentView]:
    """The built-in profiles in their listing order."""
    return [
        AgentView(
            id=agent_id,
            project_id=None,
            name=name,
            description=description,
            model=default_model,
            system_prompt=prompt,
            tools=tuple(tools),
            temperature=temperature,
            max_output_tokens=0,
            builtin=True,
        )
        for agent_id, name, description, prompt, tools, temperature in _BUILTINS
    ]
