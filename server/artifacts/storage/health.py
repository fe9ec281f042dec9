"""Health follows the blob store: a probe (S3: HEAD of the bucket; local: the directory is
writable) every `interval` seconds, and at once when a call found the store out of reach;
followers hear the first answer and then every change."""

from __future__ import annotations

from server.artifacts.storage.base import BlobStore
from server.core.probed_health import ProbedHealth


class BlobStoreHealth(ProbedHealth):
    """Start it after the store (it probes through the store's client), stop it before."""

    def __init__(self, blobs: BlobStore, interval: float, timeout: float | None = None) -> None:
        # The timeout bounds a probe against a host that does not answer (the client's own
        # retries would take longer); a probe is one small request.
        super().__init__(
            "the blob store",
            blobs.probe,
            interval,
            timeout if timeout is not None else max(interval, 2.0),
            assumed=None,
            probe_first=True,
        )
        blobs.on_unreachable(self.poke)
