"""The multipart/mixed body of POST /v1/stylize/batch: one part per item, each with its own headers."""

from __future__ import annotations

import json
import secrets

from fastapi import Response

from service.batch_plan import Outcome
from service.errors import PROBLEM_MEDIA_TYPE, AtelierError, error_body


def _multipart_response(path: str, outcomes: list[Outcome]) -> Response:
    parts: list[tuple[dict[str, str], bytes]] = []
    for index, outcome in enumerate(outcomes):
        headers = {"X-Item-Index": str(index)}
        if isinstance(outcome, AtelierError):
            body = json.dumps(error_body(f"{path}#{index}", outcome)).encode()
            headers |= {"Content-Type": PROBLEM_MEDIA_TYPE, "X-Status": str(outcome.status)}
        else:
            body = outcome.image
            headers |= {"Content-Type": outcome.media_type, "X-Status": "200", "X-Style-Id": outcome.style_reference}
        parts.append((headers, body))
    boundary = secrets.token_hex(16)
    while any(boundary.encode() in body for _, body in parts):  # practically never; the boundary must not occur
        boundary = secrets.token_hex(16)
    chunks = []
    for headers, body in parts:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        chunks += [f"--{boundary}\r\n{head}\r\n".encode(), body, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return Response(
        b"".join(chunks), media_type=f"multipart/mixed; boundary={boundary}", headers=_summary_headers(outcomes)
    )


def _summary_headers(outcomes: list[Outcome]) -> dict[str, str]:
    failed = sum(isinstance(outcome, AtelierError) for outcome in outcomes)
    return {"X-Items": str(len(outcomes)), "X-Items-Failed": str(failed)}
