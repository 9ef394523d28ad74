# The torch CPU wheel(s) of the build context at the image root: the Dockerfile's models stage
# mounts this (--build-arg TORCH_WHEELS=...) as pip --find-links where download.pytorch.org is out
# of reach. The context is a folder holding only the wheels (scripts/docker-standins.sh).
FROM scratch
COPY *.whl /
