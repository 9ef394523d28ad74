# Sourced by the Dockerfile's RUN steps. When the build is given the optional `pip_ca` secret (a
# site's CA bundle behind a TLS-inspecting proxy), pip and Python's ssl trust it for that step
# only; the secret is mounted for the step and never lands in a layer. Without it: a no-op.
if [ -s /run/secrets/pip_ca ]; then
  export PIP_CERT=/run/secrets/pip_ca SSL_CERT_FILE=/run/secrets/pip_ca REQUESTS_CA_BUNDLE=/run/secrets/pip_ca
fi
