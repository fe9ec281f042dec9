"""Email address normalisation and validation."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


def normalise_email(raw: str) -> str | None:
    """The canonical (lower-cased) form of `raw`, or None when it is not a valid address."""
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    return result.normalized.lower()
