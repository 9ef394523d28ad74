"""multipart/mixed bodies (RFC 2046): parts with their own headers and raw bytes, no base64.

urllib3 writes the parts: its multipart encoder takes each part's headers as given, and a part
without ``Content-Disposition`` is a plain MIME part. (The standard library's ``email`` generator
rewrites line endings inside binary payloads, so it cannot carry images.) The boundary is chosen
here, so that it occurs in no part.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence

from urllib3.fields import RequestField
from urllib3.filepost import encode_multipart_formdata

Part = tuple[Mapping[str, str], bytes]  # headers (non-empty values), body


def encode_multipart_mixed(parts: Sequence[Part]) -> tuple[bytes, str]:
    """The body and its ``Content-Type`` (with the boundary)."""
    boundary = secrets.token_hex(16)
    while any(boundary.encode() in body for _, body in parts):  # practically never; the boundary must not occur
        boundary = secrets.token_hex(16)
    fields = [RequestField(name=str(i), data=body, headers=dict(headers)) for i, (headers, body) in enumerate(parts)]
    body, _ = encode_multipart_formdata(fields, boundary=boundary)
    return body, f"multipart/mixed; boundary={boundary}"
