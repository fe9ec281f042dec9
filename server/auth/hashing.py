"""Password policy, and bcrypt hashing always off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import bcrypt

from server.core.errors import Violations

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_BYTES = 72  # bcrypt ignores anything longer
BCRYPT_NICENESS = 10


def password_problems(password: str) -> list[str]:
    problems = []
    if len(password) < MIN_PASSWORD_CHARS:
        problems.append(f"must be at least {MIN_PASSWORD_CHARS} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        problems.append(f"must be at most {MAX_PASSWORD_BYTES} bytes")
    if not any(c.islower() for c in password):
        problems.append("must contain a lower-case letter")
    if not any(c.isupper() for c in password):
        problems.append("must contain an upper-case letter")
    if not any(c.isdigit() for c in password):
        problems.append("must contain a digit")
    return problems


def check_password(violations: Violations, field: str, password: str) -> None:
    """Adds a violation of `field` for each rule `password` breaks."""
    for problem in password_problems(password):
        violations.add(field, problem)


def _lower_priority() -> None:
    """Hashing threads yield the CPU to the event loop: a burst of logins must not delay
    other calls (Linux schedules threads individually, so this nices only this thread)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BCRYPT_NICENESS)


class PasswordHasher:
    """bcrypt in a bounded thread pool of its own, so hashing never blocks the loop and
    a burst of logins cannot starve other blocking work (Docker calls, file hashing)."""

    def __init__(self, rounds: int, max_workers: int | None = None) -> None:
        self._rounds = rounds
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers or os.cpu_count() or 2,
            thread_name_prefix="bcrypt",
            initializer=_lower_priority,
        )
        # Verified against when an email is unknown, so both paths cost the same.
        self._dummy_hash = bcrypt.hashpw(b"forge-timing-equaliser", bcrypt.gensalt(rounds))

    async def hash(self, password: str) -> str:
        salt = bcrypt.gensalt(self._rounds)
        loop = asyncio.get_running_loop()
        hashed = await loop.run_in_executor(self._executor, bcrypt.hashpw, password.encode(), salt)
        return hashed.decode()

    async def verify(self, password: str, hashed: str | None) -> bool:
        """Checks `password` against `hashed`; with None, spends the same time and fails."""
        loop = asyncio.get_running_loop()
        target = hashed.encode() if hashed else self._dummy_hash
        ok = await loop.run_in_executor(
            self._executor, bcrypt.checkpw, password.encode()[:MAX_PASSWORD_BYTES], target
        )
        return ok and hashed is not None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
