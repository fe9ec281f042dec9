"""What a provider key's ciphertext is bound to (server/core/sealing.py): its row."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RowBinding:
    """A provider key's row: its id, owner and provider."""

    row_id: uuid.UUID
    user_id: uuid.UUID | None
    project_id: uuid.UUID | None
    provider: str

    def associated_data(self) -> bytes:
        owner = f"user:{self.user_id}" if self.user_id else f"project:{self.project_id}"
        return f"forge provider key v1\n{self.row_id}\n{owner}\n{self.provider}".encode()
