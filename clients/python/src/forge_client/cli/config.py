"""Where `forge login` keeps the server address and credentials: a JSON file in the user's
config dir (typer.get_app_dir, or FORGE_CONFIG_DIR), readable by its owner only (0600)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import typer

FILE_NAME = "credentials.json"


@dataclass
class Profile:
    server: str = ""
    email: str = ""
    access_token: str = ""
    refresh_token: str = ""
    api_key: str = ""


def config_dir() -> Path:
    return Path(os.environ.get("FORGE_CONFIG_DIR") or typer.get_app_dir("forge"))


def config_path() -> Path:
    return config_dir() / FILE_NAME


def load() -> Profile:
    try:
        data = json.loads(config_path().read_text())
    except (FileNotFoundError, ValueError):
        return Profile()
    known = Profile.__dataclass_fields__
    return Profile(**{key: str(value) for key, value in data.items() if key in known})


def save(profile: Profile) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # also when the file was there before, with other bits
    with os.fdopen(descriptor, "w") as file:
        json.dump(asdict(profile), file, indent=2)
    return path


def forget() -> None:
    config_path().unlink(missing_ok=True)
