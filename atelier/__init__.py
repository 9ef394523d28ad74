"""Atelier's command line and Python API.

    import atelier
    image = atelier.stylize("photo.jpg", preset="style-07")          # in process, a PIL image
    with atelier.Client("http://127.0.0.1:8000") as client:          # a running server
        image = client.stylize("photo.jpg", style="painting.jpg")

``Local`` (in process) and ``Client`` (over HTTP) have the same methods: ``stylize``,
``stylize_bytes``, ``stylize_many``, ``stylize_batch``, ``stylize_video``, ``register_style``, ``get_style``,
``list_styles`` and ``list_models``. Errors are ``ProblemError`` (with ``status`` and ``title``)
or ``InputError``.
"""

from __future__ import annotations

import atexit
import threading
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from atelier.errors import AtelierClientError, InputError, ProblemError, ServerUnreachable
from atelier.inputs import Stylized, StylizedVideo

if TYPE_CHECKING:
    from PIL import Image

    from atelier.client import Client
    from atelier.inputs import ImageSource
    from atelier.local import Local

try:
    __version__ = version("atelier")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "AtelierClientError",
    "Client",
    "InputError",
    "Local",
    "ProblemError",
    "ServerUnreachable",
    "Stylized",
    "StylizedVideo",
    "stylize",
]

_default: Local | None = None
_default_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    # Lazy: `import atelier` stays cheap (no ONNX Runtime, no httpx) until a class is used.
    if name == "Local":
        from atelier.local import Local

        return Local
    if name == "Client":
        from atelier.client import Client

        return Client
    raise AttributeError(f"module 'atelier' has no attribute {name!r}")


def stylize(content: ImageSource, style: ImageSource | None = None, **options: Any) -> Image.Image:
    """Stylise ``content`` in process and return a PIL image; the models load on the first call and
    stay loaded. Keywords: ``style_id``, ``preset``, ``styles``, ``weights``, ``model``, ``strength``,
    ``preserve_color``, ``max_side`` (those of ``Local.stylize_bytes``)."""
    return _local().stylize(content, style, **options)


def _local() -> Local:
    global _default
    with _default_lock:
        if _default is None:
            from atelier.local import Local

            _default = Local()
            atexit.register(_default.close)
        return _default
