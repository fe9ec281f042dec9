"""Reading a test server's /metrics as an operator's Prometheus would."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from server.app import ForgeServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(app: ForgeServer) -> Samples:
    """Every sample the server exports now, by name and labels."""
    assert app.metrics_endpoint is not None
    url = f"http://127.0.0.1:{app.metrics_endpoint.port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 when it is not exported (yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
