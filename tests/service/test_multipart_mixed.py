"""service/multipart_mixed.py: parts come back byte for byte through an independent parser (python-multipart)."""

from __future__ import annotations

import re

import pytest
from python_multipart.multipart import MultipartParser

from service import multipart_mixed
from service.multipart_mixed import encode_multipart_mixed


def parse(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """python-multipart's streaming parser, which the service itself uses for form uploads."""
    match = re.fullmatch(r"multipart/mixed; boundary=([0-9a-f]{32})", content_type)
    assert match, content_type
    parts: list[tuple[dict[str, str], bytes]] = []
    field, value, data, headers = bytearray(), bytearray(), bytearray(), {}

    def on_header_end() -> None:
        headers[field.decode()] = value.decode()
        field.clear()
        value.clear()

    def on_part_end() -> None:
        parts.append((dict(headers), bytes(data)))
        headers.clear()
        data.clear()

    callbacks = {
        "on_header_field": lambda b, start, end: field.extend(b[start:end]),
        "on_header_value": lambda b, start, end: value.extend(b[start:end]),
        "on_header_end": on_header_end,
        "on_part_data": lambda b, start, end: data.extend(b[start:end]),
        "on_part_end": on_part_end,
    }
    parser = MultipartParser(match.group(1), callbacks)  # type: ignore[arg-type]
    assert parser.write(body) == len(body)
    parser.finalize()
    return parts


def test_binary_parts_and_their_headers_round_trip() -> None:
    binary = bytes(range(256)) * 8 + b"\r\n--\r\n\r\n\n\r"  # line endings and dashes a generator could mangle
    parts = [
        ({"Content-Type": "image/png", "X-Item-Index": "0", "X-Status": "200"}, binary),
        ({"Content-Type": "application/problem+json", "X-Item-Index": "1", "X-Status": "415"}, b'{"status":415}'),
        ({"Content-Type": "image/webp", "X-Item-Index": "2"}, b""),
    ]
    body, content_type = encode_multipart_mixed(parts)
    assert body.startswith(b"--") and body.endswith(b"--\r\n")  # no preamble, no epilogue
    assert parse(body, content_type) == [(dict(headers), data) for headers, data in parts]


def test_the_boundary_never_occurs_in_a_part(monkeypatch: pytest.MonkeyPatch) -> None:
    """A boundary drawn at random that a part happens to contain is drawn again."""
    taken, fresh = "a" * 32, "b" * 32
    draws = iter([taken, fresh])
    monkeypatch.setattr(multipart_mixed.secrets, "token_hex", lambda _: next(draws))
    body, content_type = encode_multipart_mixed([({"Content-Type": "text/plain"}, f"--{taken}--".encode())])
    assert content_type == f"multipart/mixed; boundary={fresh}"
    assert parse(body, content_type) == [({"Content-Type": "text/plain"}, f"--{taken}--".encode())]
