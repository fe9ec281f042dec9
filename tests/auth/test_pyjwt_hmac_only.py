"""Forge's tokens are HS256 only, and PyJWT loads without `cryptography` (server/core/pyjwt.py),
in a fresh interpreter each (this test process may hold either already)."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json, sys
{before}
from server.core import pyjwt
pyjwt.load()
import jwt
token = jwt.encode({{"sub": "someone"}}, "k" * 32, algorithm="HS256")
claims = jwt.decode(token, "k" * 32, algorithms=["HS256"])
try:
    jwt.decode(token, "another key" * 3, algorithms=["HS256"])
    forged = "accepted"
except jwt.InvalidSignatureError:
    forged = "refused"
loaded = "cryptography" in sys.modules
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # still importable after
print(json.dumps({{"claims": claims, "forged": forged, "cryptography_loaded": loaded,
                  "asymmetric": jwt.algorithms.has_crypto}}))
"""


def _probe(before: str = "") -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(before=before)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_pyjwt_loads_without_cryptography_and_checks_hs256() -> None:
    assert _probe() == {
        "claims": {"sub": "someone"},
        "forged": "refused",
        "cryptography_loaded": False,
        "asymmetric": False,
    }


def test_a_process_that_loaded_cryptography_gets_pyjwt_as_it_is() -> None:
    result = _probe(before="import cryptography.hazmat.primitives.ciphers.aead")
    assert result["cryptography_loaded"] is True
    assert result["asymmetric"] is True
    assert result["forged"] == "refused"
