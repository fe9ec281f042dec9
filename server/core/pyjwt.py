"""PyJWT, imported with its HMAC algorithms only.

Forge signs and checks its tokens (access tokens, preview links) with HS256 and pins the
algorithm when it checks one. PyJWT imports `cryptography` whenever it can, for RSA, EC and
EdDSA keys Forge never uses: about 9 MiB resident, in every server process from its first
token on (measured: `import jwt` 9.1 MiB with it, 0.3 MiB without). PyJWT decides this by
whether that import raises ModuleNotFoundError, so `cryptography` is hidden while PyJWT
loads; a process that has already loaded `cryptography` (sealing keys, TLS) gets PyJWT as
it is."""

from __future__ import annotations

import _imp
import sys


def load() -> None:
    """Imports `jwt` unless it is loaded already; then `import jwt` finds it."""
    if "jwt" in sys.modules:
        return
    # The global import lock keeps another thread from importing `cryptography` (and
    # failing) while it is hidden; it is reentrant, so PyJWT's own imports proceed.
    _imp.acquire_lock()
    try:
        hide = "cryptography" not in sys.modules
        if hide:
            sys.modules["cryptography"] = None  # type: ignore[assignment]  # "import it" fails
        try:
            import jwt  # noqa: F401
        finally:
            if hide:
                del sys.modules["cryptography"]
    finally:
        _imp.release_lock()
