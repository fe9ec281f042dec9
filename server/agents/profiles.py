"""Agent profiles: the built-in ones (read-only, in every project) and each project's own.

Viewers list and read; editors and up create, change and delete a project's profiles.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import replace

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.agents import store
from server.agents.access import project_with_role, require_field
from server.agents.generation import check_stop_sequences, check_top_p
from server.agents.profiles_builtin import BUILTIN_IDS, builtin_agents
from server.agents.rows import agent_view
from server.agents.runs.tools import TOOL_NAMES
from server.agents.views import AgentDraft, AgentView
from server.core.access import ProjectRole
from server.core.context import Caller
from server.core.errors import AlreadyExists, FailedPrecondition, NotFound, Violations
from server.core.ids import parse_id
from server.core.pagination import Listed, Page
from server.db.agent_models import AgentProfile
from server.llm import ProviderRegistry

AGENT_NOT_FOUND = "AGENT_NOT_FOUND"
AGENT_BUILTIN = "AGENT_BUILTIN"
AGENT_NAME_TAKEN = "AGENT_NAME_TAKEN"

MUTABLE_FIELDS = (
    "name",
    "description",
    "model",
    "system_prompt",
    "tools",
    "temperature",
    "max_output_tokens",
    "top_p",
    "stop_sequences",
)
_LIST_FIELDS = ("tools", "stop_sequences")
MAX_NAME = 100
MAX_DESCRIPTION = 2000
MAX_SYSTEM_PROMPT = 100_000
MAX_OUTPUT_TOKENS = 1_000_000
MAX_TEMPERATURE = 2.0

_BUILTIN_KEY = "b"
_PROJECT_KEY = "p"


def agent_not_found() -> NotFound:
    return NotFound("agent profile not found", AGENT_NOT_FOUND)


class AgentProfiles:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], registry: ProviderRegistry
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._builtins = builtin_agents(registry.default_model)
        self._builtin_by_id = {agent.id: agent for agent in self._builtins}

    # --- reading ---------------------------------------------------------------------

    async def list(self, caller: Caller, project_id: str, page: Page) -> Listed[AgentView]:
        """Built-in profiles first, then the project's own, oldest first."""
        after, size = page.after, page.size
        async with self._sessions() as db:
            pid = await project_with_role(db, caller, project_id, ProjectRole.VIEWER)
            builtins: list[tuple[list[str], AgentView]] = [
                ([_BUILTIN_KEY, str(index)], agent) for index, agent in enumerate(self._builtins)
            ]
            after_id: uuid.UUID | None = None
            if after is not None and len(after) == 2 and after[0] == _BUILTIN_KEY:
                start = int(after[1]) + 1 if after[1].isdigit() else len(builtins)
                builtins = builtins[start:]
            elif after is not None:
                builtins = []
                after_id = parse_id(after[-1])
            listed = builtins[: size + 1]
            if len(listed) <= size:
                rows = await store.list_profiles(db, pid, after_id, size + 1 - len(listed))
                listed.extend(([_PROJECT_KEY, str(row.id)], agent_view(row)) for row in rows)
        shown = listed[:size]
        more = len(listed) > size
        return Listed(
            items=[agent for _, agent in shown], next_key=shown[-1][0] if more and shown else None
        )

    async def get(self, caller: Caller, project_id: str, agent_id: str) -> AgentView:
        async with self._sessions() as db:
            pid = await project_with_role(db, caller, project_id, ProjectRole.VIEWER)
            require_field(agent_id, "agent_id")
            agent = await self.find(db, pid, agent_id)
        if agent is None:
            raise agent_not_found()
        return agent

    async def find(
        self, db: AsyncSession, project_id: uuid.UUID, agent_id: str
    ) -> AgentView | None:
        """A built-in profile, or one of the project's (the caller's role is already checked)."""
        builtin = self._builtin_by_id.get(agent_id)
        if builtin is not None:
            return builtin
        profile_id = parse_id(agent_id)
        if profile_id is None:
            return None
        row = await store.get_profile(db, project_id, profile_id)
        return agent_view(row) if row is not None else None

    # --- writing ---------------------------------------------------------------------

    async def create(self, caller: Caller, project_id: str, draft: AgentDraft) -> AgentView:
        draft = self._validate(draft, MUTABLE_FIELDS)
        async with self._sessions() as db, db.begin():
            pid = await project_with_role(db, caller, project_id, ProjectRole.EDITOR)
            await self._check_name(db, pid, draft.name, None)
            row = AgentProfile(
                project_id=pid,
                name=draft.name,
                description=draft.description,
                model=draft.model,
                system_prompt=draft.system_prompt,
                tools=list(draft.tools),
                temperature=draft.temperature,
                max_output_tokens=draft.max_output_tokens,
                top_p=draft.top_p,
                stop_sequences=list(draft.stop_sequences),
                creator_id=caller.user_id,
            )
            db.add(row)
            await _flush(db)
            await db.refresh(row)
            return agent_view(row)

    async def update(
        self,
        caller: Caller,
        project_id: str,
        agent_id: str,
        draft: AgentDraft,
        paths: Iterable[str],
    ) -> AgentView:
        paths = set(paths)
        async with self._sessions() as db, db.begin():
            pid = await project_with_role(db, caller, project_id, ProjectRole.EDITOR)
            row = await self._own_profile(db, pid, agent_id, "agent.id")
            draft = self._validate(draft, paths)
            if "name" in paths:
                await self._check_name(db, pid, draft.name, row.id)
            for path in paths:
                value = getattr(draft, path)
                setattr(row, path, list(value) if path in _LIST_FIELDS else value)
            await _flush(db)
            await db.refresh(row)
            return agent_view(row)

    async def delete(self, caller: Caller, project_id: str, agent_id: str) -> None:
        async with self._sessions() as db, db.begin():
            pid = await project_with_role(db, caller, project_id, ProjectRole.EDITOR)
            row = await self._own_profile(db, pid, agent_id, "agent_id")
            await store.forget_agent(db, pid, str(row.id))
            await db.delete(row)

    async def _own_profile(
        self, db: AsyncSession, project_id: uuid.UUID, agent_id: str, field_name: str
    ) -> AgentProfile:
        require_field(agent_id, field_name)
        if agent_id in BUILTIN_IDS:
            raise FailedPrecondition(
                "built-in agent profiles cannot be changed or deleted; create your own",
                AGENT_BUILTIN,
                metadata={"agent_id": agent_id},
            )
        profile_id = parse_id(agent_id)
        row = (
            await store.get_profile(db, project_id, profile_id, lock=True)
            if profile_id is not None
            else None
        )
        if row is None:
            raise agent_not_found()
        return row

    async def _check_name(
        self, db: AsyncSession, project_id: uuid.UUID, name: str, except_id: uuid.UUID | None
    ) -> None:
        if any(agent.name.lower() == name.lower() for agent in self._builtins) or (
            await store.profile_name_taken(db, project_id, name, except_id)
        ):
            raise _name_taken(name)

    def _validate(self, draft: AgentDraft, paths: Iterable[str]) -> AgentDraft:
        """The draft with the fields named in `paths` checked, and the name and the model
        canonicalised."""
        paths = set(paths)
        violations = Violations()
        if "name" in paths:
            draft = replace(draft, name=draft.name.strip())
            violations.check(bool(draft.name), "agent.name", "is required")
            violations.check(
                len(draft.name) <= MAX_NAME, "agent.name", f"must be at most {MAX_NAME} characters"
            )
            violations.check(
                draft.name.isprintable(), "agent.name", "must not contain control characters"
            )
        if "description" in paths:
            violations.check(
                len(draft.description) <= MAX_DESCRIPTION,
                "agent.description",
                f"must be at most {MAX_DESCRIPTION} characters",
            )
        if "system_prompt" in paths:
            violations.check(
                len(draft.system_prompt) <= MAX_SYSTEM_PROMPT,
                "agent.system_prompt",
                f"must be at most {MAX_SYSTEM_PROMPT} characters",
            )
        if "tools" in paths:
            # Names are echoed cut short: the status travels in headers of bounded size (a
            # 64 KiB name would turn INVALID_ARGUMENT into a transport error at the client).
            unknown = [
                tool if len(tool) <= 40 else f"{tool[:40]}…"
                for tool in draft.tools
                if tool not in TOOL_NAMES
            ]
            violations.check(
                not unknown,
                "agent.tools",
                f"unknown tools {unknown[:5]}; known: {', '.join(TOOL_NAMES)}",
            )
            violations.check(
                len(set(draft.tools)) == len(draft.tools), "agent.tools", "lists a tool twice"
            )
        if "temperature" in paths and draft.temperature is not None:
            violations.check(
                math.isfinite(draft.temperature) and 0 <= draft.temperature <= MAX_TEMPERATURE,
                "agent.temperature",
                f"must be between 0 and {MAX_TEMPERATURE}",
            )
        if "max_output_tokens" in paths:
            violations.check(
                0 <= draft.max_output_tokens <= MAX_OUTPUT_TOKENS,
                "agent.max_output_tokens",
                f"must be between 0 and {MAX_OUTPUT_TOKENS}",
            )
        if "top_p" in paths:
            check_top_p(violations, "agent.top_p", draft.top_p)
        if "stop_sequences" in paths:
            check_stop_sequences(violations, "agent.stop_sequences", draft.stop_sequences)
        violations.raise_if_any()
        if "model" in paths and draft.model:
            # Well formed is enough: whether a model can answer depends on who calls (their
            # own provider keys); a chat or run answers PROVIDER_NOT_CONFIGURED otherwise.
            self._registry.parse(draft.model, field="agent.model")
        return draft


def _name_taken(name: str) -> AlreadyExists:
    return AlreadyExists(
        f"an agent profile named {name!r} already exists in this project",
        AGENT_NAME_TAKEN,
        metadata={"name": name},
    )


async def _flush(db: AsyncSession) -> None:
    try:
        await db.flush()
    except IntegrityError as error:
        # Two writers chose the same name at once; the unique constraint settled it.
        raise AlreadyExists(
            "an agent profile with this name already exists in this project", AGENT_NAME_TAKEN
        ) from error
