# Stand-in for redis:7.4-alpine where no registry answers: Debian bookworm's redis-server (7.0),
# working directory /data owned by the redis user it runs as (a new named volume takes that owner).
ARG DEBIAN_IMAGE=atelier-standin/debian:bookworm
# hadolint ignore=DL3006
FROM ${DEBIAN_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data /usr/local/etc/redis && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
