"""All service settings, in one pydantic-settings class read from ``ATELIER_*`` environment variables.

Every field's default is the embedded local run: the default models from ``make models``, CPU or
CUDA chosen automatically, no API keys. The README's configuration table lists the same fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """Service configuration; each field is read from ``ATELIER_<FIELD>`` (case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_", extra="ignore", frozen=True)

    model_dir: Path = Field(REPO_ROOT / "models", description="model repository: <name>/<version>/manifest.json")
    default_model: str = Field("magenta-mobile", description="arbitrary model used when a request names none")
    presets_model: str = Field("presets-26", description="N-style model whose rows are the presets")
    providers: Literal["auto", "cuda", "cpu"] = Field(
        "auto",
        description="execution provider: auto (CUDA when ONNX Runtime offers it, else CPU), cuda "
        "(readiness fails unless CUDA is really active) or cpu",
    )
    intra_op_threads: int = Field(0, ge=0, description="ONNX Runtime intra-op threads per session; 0 = its default")
    workers: int = Field(2, ge=1, description="threads running decode, inference and encode off the event loop")
    max_pending: int = Field(32, ge=1, description="requests queued or running before new ones get 503")
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="largest request body, in bytes")
    max_field_bytes: int = Field(64 * 1024, ge=256, description="largest non-file form field, in bytes")
    max_pixels: int = Field(
        36_000_000, ge=1, le=89_000_000, description="largest decoded image, width x height (checked before decoding)"
    )
    max_output_side: int = Field(2048, ge=16, description="cap on the longest side of a stylised image")
    min_image_side: int = Field(8, ge=1, description="images with a shorter side than this are refused (422)")
    cache_entries: int = Field(1024, ge=0, description="style embeddings kept in the in-process LRU; 0 disables it")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated bearer keys; when set, every /v1 route needs one and registered styles "
        "are private to the key that registered them",
    )
    style_dir: Path = Field(REPO_ROOT / ".cache" / "styles", description="where registered styles are stored")
    host: str = Field("127.0.0.1", description="bind address for `python -m service` (HOST overrides)")
    port: int = Field(8000, ge=0, le=65535, description="port for `python -m service` (PORT overrides)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level of the JSON logs")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)
