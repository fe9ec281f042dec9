"""Libraries imported without the optional dependencies they load for what Forge never uses.

Some libraries import an optional dependency whenever it is installed, and decide whether to
offer what it serves by whether that import raises ModuleNotFoundError. Hiding it while they
load keeps its memory out of every server process:

- PyJWT imports `cryptography` for RSA, EC and EdDSA keys. Forge signs and checks its tokens
  (access tokens, preview links) with HS256 alone and pins the algorithm when it checks one:
  `import jwt` costs 9.1 MiB resident with it, 0.3 MiB without.
- requests, under the Docker SDK, imports `charset_normalizer` to guess the encoding of a
  response whose Content-Type names none. The Engine API answers JSON (which requests
  decodes by its own rules) and plain-text errors; without a detector, requests reads such
  text as UTF-8, which is what the engine writes: the SDK costs 4.1 MiB instead of 6.7.

A process that has already loaded a dependency gets the library as it is.
"""

from __future__ import annotations

import _imp
import importlib
import sys
import warnings
from collections.abc import Iterable


def load_pyjwt() -> None:
    """Imports `jwt` (unless loaded already) with its HMAC algorithms only; then `import jwt`
    finds it."""
    _import_without("jwt", ("cryptography",))


def load_docker_sdk() -> None:
    """Imports `docker` (unless loaded already) with requests reading undeclared text as
    UTF-8; then `import docker` finds it."""
    with warnings.catch_warnings():
        # requests warns once that it found no character detector: that is the point.
        warnings.filterwarnings("ignore", message="Unable to find acceptable character detection")
        _import_without("docker", ("charset_normalizer", "chardet"))


def _import_without(module: str, hidden: Iterable[str]) -> None:
    if module in sys.modules:
        return
    # The global import lock keeps another thread from importing a hidden module (and
    # failing) meanwhile; it is reentrant, so the library's own imports proceed.
    _imp.acquire_lock()
    try:
        hide = [name for name in hidden if name not in sys.modules]
        for name in hide:
            sys.modules[name] = None  # type: ignore[assignment]  # "import it" fails
        try:
            importlib.import_module(module)
        finally:
            for name in hide:
                del sys.modules[name]
    finally:
        _imp.release_lock()
