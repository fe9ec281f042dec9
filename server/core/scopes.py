"""What an API key may do: scopes, and the scope each RPC needs (by its name, so a new RPC
is covered by the house's naming: Get/List/… read, Exec/RunCode run code, the rest write).

Access tokens (a signed-in user) carry every scope; only API keys are narrowed. Account
management (password, keys, sessions) refuses API keys whatever their scopes, so a leaked
key cannot take the account over."""

from __future__ import annotations

from collections.abc import Iterable

from server.core.errors import FieldViolation, InvalidArgument, PermissionDenied

READ = "read"
WRITE = "write"
SANDBOX_EXEC = "sandbox:exec"
ADMIN = "admin"
ALL_SCOPES = (READ, WRITE, SANDBOX_EXEC, ADMIN)
DEFAULT_API_KEY_SCOPES = (READ, WRITE, SANDBOX_EXEC)

ACCOUNT_MANAGEMENT = frozenset(
    {
        "ChangePassword",
        "CreateApiKey",
        "ListApiKeys",
        "RevokeApiKey",
        "ListSessions",
        "RevokeSession",
        # A leaked API key must not plant a provider key (and so read the calls made with it).
        "CreateProviderKey",
        "DeleteProviderKey",
    }
)
_NEEDS: dict[str, frozenset[str]] = {
    "Exec": frozenset({SANDBOX_EXEC}),
    "RunCode": frozenset({SANDBOX_EXEC}),
    # A run's tools run code in a sandbox.
    "StartRun": frozenset({WRITE, SANDBOX_EXEC}),
    "ListUsers": frozenset({ADMIN}),
    "UpdateUser": frozenset({ADMIN}),
    "GetSystemStats": frozenset({ADMIN}),
    "UpdateUserLimits": frozenset({ADMIN}),
    "UpdateProvider": frozenset({ADMIN}),
}
_READ_PREFIXES = ("Get", "List", "Watch", "Export", "Download", "Read")


def needed_scopes(method: str) -> frozenset[str]:
    """The scopes an API key needs for `method` ("/pkg.Service/Name" or "Name")."""
    name = method.rsplit("/", 1)[-1]
    needs = _NEEDS.get(name)
    if needs is not None:
        return needs
    return frozenset({READ}) if name.startswith(_READ_PREFIXES) else frozenset({WRITE})


def check_api_key_call(method: str, scopes: frozenset[str]) -> None:
    """PERMISSION_DENIED unless an API key with `scopes` may call `method`."""
    name = method.rsplit("/", 1)[-1]
    if name in ACCOUNT_MANAGEMENT:
        raise PermissionDenied(
            "API keys cannot manage the account (password, keys, sessions); sign in",
            "API_KEY_NOT_ALLOWED",
        )
    missing = needed_scopes(name) - scopes
    if missing:
        raise PermissionDenied(
            f"this API key lacks the scope {', '.join(sorted(missing))} for {name}",
            "API_KEY_SCOPE_MISSING",
            metadata={"missing_scopes": ",".join(sorted(missing))},
        )


def requested_scopes(scopes: Iterable[str], field: str = "scopes") -> tuple[str, ...]:
    """The scopes asked for a new key (validated, de-duplicated, in the house's order);
    none asked for means the default."""
    asked = [scope.strip() for scope in scopes]
    unknown = sorted({scope for scope in asked if scope not in ALL_SCOPES})
    if unknown:
        raise InvalidArgument.of(
            [
                FieldViolation(
                    field,
                    f"unknown scope {', '.join(repr(s) for s in unknown)[:200]}; "
                    f"known: {', '.join(ALL_SCOPES)}",
                )
            ]
        )
    if not asked:
        return DEFAULT_API_KEY_SCOPES
    return tuple(scope for scope in ALL_SCOPES if scope in asked)
