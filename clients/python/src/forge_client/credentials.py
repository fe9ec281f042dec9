"""Who the client calls as: an API key, or an access token with the refresh token that
renews it. Shared by the async and sync clients."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from forge_client._proto.forge.auth import v1 as auth

API_KEY_HEADER = "x-api-key"


@dataclass
class Tokens:
    access_token: str = ""
    refresh_token: str = ""


class Credentials:
    """The metadata every call carries. `on_tokens` is told about renewed tokens (e.g. to
    store them); an API key takes precedence over tokens."""

    def __init__(
        self,
        *,
        token: str | None = None,
        refresh_token: str | None = None,
        api_key: str | None = None,
        on_tokens: Callable[[Tokens], None] | None = None,
    ) -> None:
        self._tokens = Tokens(token or "", refresh_token or "")
        self.api_key = api_key or ""
        self.on_tokens = on_tokens
        self._lock = threading.Lock()

    @property
    def access_token(self) -> str:
        return self._tokens.access_token

    @property
    def refresh_token(self) -> str:
        return self._tokens.refresh_token

    @property
    def can_refresh(self) -> bool:
        return not self.api_key and bool(self._tokens.refresh_token)

    def metadata(self) -> list[tuple[str, str]]:
        if self.api_key:
            return [(API_KEY_HEADER, self.api_key)]
        if self._tokens.access_token:
            return [("authorization", f"Bearer {self._tokens.access_token}")]
        return []

    def use(self, tokens: auth.Tokens | None) -> None:
        """Calls from now on carry these tokens (after Register, Login or a refresh)."""
        if tokens is None:
            return
        with self._lock:
            self._tokens = Tokens(tokens.access_token, tokens.refresh_token)
            renewed = Tokens(tokens.access_token, tokens.refresh_token)
        if self.on_tokens is not None:
            self.on_tokens(renewed)

    def clear(self) -> None:
        with self._lock:
            self._tokens = Tokens()
