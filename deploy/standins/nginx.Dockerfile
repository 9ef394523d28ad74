# Stand-in for nginx:1.27-alpine where no registry answers: Debian bookworm's nginx (1.22) with the
# upstream image's nginx user (uid/gid 101), wget for the compose healthcheck, logs to the
# container's output and SIGQUIT (graceful) as the stop signal, as upstream.
ARG DEBIAN_IMAGE=atelier-standin/debian:bookworm
# hadolint ignore=DL3006
FROM ${DEBIAN_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx wget \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 101 nginx \
    && useradd --system --uid 101 --gid 101 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nginx \
    && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
