# Stand-in for python:3.12-slim-bookworm where no registry answers: Debian bookworm's python3 (3.11,
# within pyproject's >=3.10) in a venv first on PATH, so `python` and `pip` behave as in the
# upstream image. Built by scripts/docker-standins.sh, only inside the engine it builds for.
ARG DEBIAN_IMAGE=atelier-standin/debian:bookworm
# hadolint ignore=DL3006
FROM ${DEBIAN_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /usr/local/python
ENV PATH=/usr/local/python/bin:$PATH LANG=C.UTF-8
CMD ["python"]
