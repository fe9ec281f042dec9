"""GenerateImage: an image from a prompt, kept as an `image` artifact and charged to the
caller through the usage ledger's port (one image for the model, today, UTC), in the same
transaction as the artifact."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from server.artifacts import store, validation
from server.artifacts.core import ArtifactsCore, check_sources
from server.artifacts.kinds import Kind, Origin
from server.artifacts.manager import ArtifactManager
from server.artifacts.views import ArtifactView
from server.core.access import ProjectRole, require_project_role
from server.core.context import Caller
from server.core.errors import Violations
from server.core.hooks import Port, UsageCharges
from server.llm import ImageGenerator
from server.llm.own_keys import NO_OWN_KEY_LOOKUP, OwnKeysLookup

MAX_PROMPT = 4000
MAX_STYLE = 100
MIN_SIDE, MAX_SIDE = 16, 4096
DEFAULT_SIZE = (1024, 1024)

_SIZE = re.compile(r"\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*")
_SLUG = re.compile(r"[^a-z0-9]+")
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


@dataclass(frozen=True)
class ImageSpec:
    project_id: str
    prompt: str
    size: str = ""
    style: str = ""
    model: str = ""
    title: str = ""
    conversation_id: str = ""


def parse_size(value: str, violations: Violations) -> tuple[int, int]:
    if not value.strip():
        return DEFAULT_SIZE
    match = _SIZE.fullmatch(value)
    if match is None:
        violations.add("size", "must be WIDTHxHEIGHT, e.g. 1024x1024")
        return DEFAULT_SIZE
    width, height = int(match[1]), int(match[2])
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        violations.add("size", f"each side must be between {MIN_SIDE} and {MAX_SIDE} pixels")
    return width, height


def image_filename(prompt: str, content_type: str) -> str:
    slug = _SLUG.sub("-", prompt.lower()).strip("-")[:48].rstrip("-") or "image"
    return f"{slug}.{_EXTENSIONS.get(content_type, 'img')}"


def image_title(prompt: str) -> str:
    line = " ".join(prompt.split())
    return line if len(line) <= 100 else line[:99].rstrip() + "…"


class ImageArtifacts:
    def __init__(
        self,
        core: ArtifactsCore,
        manager: ArtifactManager,
        generator: ImageGenerator,
        usage: Port[UsageCharges],
        own_keys: Port[OwnKeysLookup],
    ) -> None:
        self._core = core
        self._manager = manager
        self._generator = generator
        self._usage = usage
        self._own_keys = own_keys

    async def generate(self, caller: Caller, spec: ImageSpec) -> ArtifactView:
        violations = Violations()
        project_id = validation.required_id(spec.project_id, "project_id", violations)
        prompt = spec.prompt.strip()
        if not prompt:
            violations.add("prompt", "is required")
        elif len(prompt) > MAX_PROMPT:
            violations.add("prompt", f"must be at most {MAX_PROMPT} characters")
        width, height = parse_size(spec.size, violations)
        style = spec.style.strip()
        if len(style) > MAX_STYLE or any(ord(c) < 32 for c in style):
            violations.add("style", f"must be one line of at most {MAX_STYLE} characters")
        title = validation.title(spec.title, "title", violations)
        conversation = validation.optional_id(spec.conversation_id, "conversation_id", violations)
        violations.raise_if_any()
        assert project_id is not None
        async with self._core.sessions() as db:
            await require_project_role(db, caller, project_id, ProjectRole.EDITOR)
        lookup = self._own_keys.get() if self._own_keys.provided else NO_OWN_KEY_LOOKUP
        requested = spec.model.strip()
        own_keys = await lookup.for_call(caller.user_id, project_id, model=requested)
        model = self._generator.resolve(requested, own_keys=own_keys)
        await check_sources(self._core, project_id, conversation, None, None)
        own_key = own_keys.get(model.partition("/")[0])
        image = await self._generator.generate(
            model, prompt, style, width, height, own_key.api_key if own_key else None
        )
        if own_key is not None:
            lookup.used(own_key.key_id)
        user = caller.user_id
        new = store.NewArtifact(
            project_id=project_id,
            title=title or image_title(prompt),
            filename=image_filename(prompt, image.content_type),
            language="",
            kind=Kind.IMAGE,
            content_type=image.content_type,
            origin=Origin.IMAGE_GENERATION,
            creator_id=user,
            conversation_id=conversation,
        )

        async def count_usage(db: AsyncSession) -> None:
            await self._usage.get().charge_image(db, user, model)

        return await self._manager.record_new(caller, new, image.data, also=count_usage)
