"""`python -m service.openapi_dump [--check]`: write (or compare) the committed openapi/openapi.json."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from service.config import REPO_ROOT, Settings
from service.main import create_app

SPEC_PATH = REPO_ROOT / "openapi" / "openapi.json"


def current_spec() -> str:
    """The app's schema, rendered the way the committed file is (settings do not change it)."""
    return json.dumps(create_app(Settings()).openapi(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed file differs")
    parser.add_argument("--path", type=Path, default=SPEC_PATH)
    args = parser.parse_args(argv)
    spec = current_spec()
    if args.check:
        same = args.path.is_file() and args.path.read_text() == spec
        print(f"{args.path}: {'up to date' if same else 'DRIFTED: run make openapi'}")
        return 0 if same else 1
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(spec)
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
