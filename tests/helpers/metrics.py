"""Reading a server's /metrics: one sample, or every sample parsed."""

from __future__ import annotations

import re

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.server import LiveServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metric(server: LiveServer, name: str, **labels: str) -> float:
    """One sample from the server's /metrics (0 when absent)."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name + ("{" + selector + "}" if labels else "")) + r" ([0-9.e+-]+)"
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def metric_sum(server: LiveServer, name: str) -> float:
    """The sum of a metric's samples, whatever their labels (0 when it has none yet)."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def scrape(text: str) -> Samples:
    """Prometheus text -> {(sample name, sorted labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
