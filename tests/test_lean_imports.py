"""Libraries loaded without the optional dependencies they would load for what Forge never
uses (server/core/lean_imports.py), each checked in a fresh interpreter (this test process
may hold any of them already): PyJWT without `cryptography`, still checking HS256; the Docker
SDK's requests without `charset_normalizer`, still reading what the engine answers."""

from __future__ import annotations

import json
import subprocess
import sys

_PYJWT = """
import json, sys
{before}
from server.core import lean_imports
lean_imports.load_pyjwt()
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

_DOCKER_SDK = """
import json, sys
from server.core import lean_imports
lean_imports.load_docker_sdk()
import docker.errors, requests


def answer(status, body, content_type):
    response = requests.Response()
    response.status_code = status
    response._content = body.encode()
    if content_type:
        response.headers["Content-Type"] = content_type
    return response


def error(response):
    try:
        response.raise_for_status()
    except requests.exceptions.HTTPError as failure:
        try:
            docker.errors.create_api_error_from_http_exception(failure)
        except docker.errors.APIError as api_error:
            return type(api_error).__name__, api_error.explanation


json_error = answer(404, '{"message": "No such container: caf\\u00e9"}', "application/json")
undeclared = answer(500, "le conteneur est arr\\u00eat\\u00e9", None)
detector_loaded = "charset_normalizer" in sys.modules
import charset_normalizer  # still importable after
print(json.dumps({
    "json_error": error(json_error),
    "undeclared_text": undeclared.text,
    "detector_loaded": detector_loaded,
}))
"""


def _probe(code: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-W", "error::Warning:requests", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_pyjwt_loads_without_cryptography_and_checks_hs256() -> None:
    assert _probe(_PYJWT.format(before="")) == {
        "claims": {"sub": "someone"},
        "forged": "refused",
        "cryptography_loaded": False,
        "asymmetric": False,
    }


def test_a_process_that_loaded_cryptography_gets_pyjwt_as_it_is() -> None:
    result = _probe(_PYJWT.format(before="import cryptography.hazmat.primitives.ciphers.aead"))
    assert result["cryptography_loaded"] is True
    assert result["asymmetric"] is True
    assert result["forged"] == "refused"


def test_the_docker_sdk_loads_without_a_character_detector_and_reads_the_engine() -> None:
    # (requests' warnings raise here: the one that it found no detector is kept quiet.)
    assert _probe(_DOCKER_SDK) == {
        "json_error": ["NotFound", "No such container: café"],
        "undeclared_text": "le conteneur est arrêté",
        "detector_loaded": False,
    }
