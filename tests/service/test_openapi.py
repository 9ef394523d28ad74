"""The committed OpenAPI document matches the app, and a bounded schemathesis run finds no 5xx."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from service.openapi_dump import SPEC_PATH, current_spec
from tests.service.conftest import LiveServer

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def test_committed_openapi_matches_the_app() -> None:
    assert SPEC_PATH.is_file(), "openapi/openapi.json is missing: run `make openapi`"
    assert SPEC_PATH.read_text() == current_spec(), (
        "the app's OpenAPI drifted from openapi/openapi.json: run `make openapi`"
    )


def test_committed_openapi_is_what_the_server_serves(client: httpx.Client) -> None:
    assert client.get("/openapi.json").json() == json.loads(SPEC_PATH.read_text())


def test_spec_documents_fields_and_problem_responses() -> None:
    spec = json.loads(SPEC_PATH.read_text())
    body = spec["components"]["schemas"]["StylizeForm"]
    assert set(body["properties"]) >= {
        "content",
        "style",
        "style_id",
        "preset",
        "styles",
        "weights",
        "strength",
        "preserve_color",
        "max_side",
        "format",
        "quality",
        "model",
    }
    assert body["required"] == ["content"]
    responses = spec["paths"]["/v1/stylize"]["post"]["responses"]
    for status in ("400", "404", "413", "415", "422"):
        assert "application/problem+json" in responses[status]["content"], status
    assert set(responses["200"]["content"]) == {"image/png", "image/jpeg", "image/webp"}
    assert "HTTPValidationError" not in json.dumps(spec["paths"]), "a route still documents FastAPI's 422 body"


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(server: LiveServer, tmp_path: Path) -> None:
    """Fuzz every operation of the committed spec against the live server, bounded in examples and time."""
    max_time = os.environ.get("ATELIER_FUZZ_SECONDS", "40")
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            str(SPEC_PATH),
            "--url",
            server.url,
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "15",
            "--max-time",
            max_time,
            "--seed",
            "20260124",
            "--generation-database",
            "none",
            "--workers",
            "2",
            "--no-color",
            "--request-timeout",
            "60",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=int(max_time) + 120,
    )
    tail = result.stdout[-3000:] + result.stderr[-2000:]
    assert result.returncode == 0, tail
    assert "passed" in result.stdout and "generated" in result.stdout, tail
