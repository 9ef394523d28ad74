#!/usr/bin/env python3
"""Stream a video through Atelier's /v1/live WebSocket and save the painted frames.

Needs only `websockets` and Pillow (pip install websockets pillow); it does not import Atelier.

    python examples/live_client.py clip.y4m --preset style-03 --out painted/
    python examples/live_client.py frames/ --style-id <id from POST /v1/styles> --fps 15
    python examples/live_client.py 0 --preset 7      # camera 0, with OpenCV installed

SOURCE is a .y4m video (what `ffmpeg -i in.mp4 -pix_fmt yuv420p out.y4m` writes), a .mjpeg/.mjpg
stream of concatenated JPEGs, a folder of images (sorted by name), or, when OpenCV is installed
(pip install opencv-python-headless), any video file it reads or a camera index such as 0.

Frames are sent at --fps as a camera would; the server paints the newest and drops the stale ones,
so the output has gaps when the server is slower than the source. A JSON summary is printed at the
end: frames sent, painted and dropped, painted fps and the latency from send to painted frame.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from PIL import Image
from websockets.asyncio.client import ClientConnection, connect

SUBPROTOCOL = "atelier.live.v1"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def y4m_frames(path: Path) -> Iterator[Image.Image]:
    """RGB frames of a 4:2:0 YUV4MPEG2 file."""
    with path.open("rb") as stream:
        header = stream.readline().split()
        if not header or header[0] != b"YUV4MPEG2":
            raise SystemExit(f"{path} is not a YUV4MPEG2 file")
        fields = {token[:1]: token[1:] for token in header[1:]}
        if not fields.get(b"C", b"420").startswith(b"420"):
            raise SystemExit(f"{path}: only 4:2:0 Y4M is supported (ffmpeg -pix_fmt yuv420p)")
        width, height = int(fields[b"W"]), int(fields[b"H"])
        chroma = ((width + 1) // 2, (height + 1) // 2)
        while stream.readline().startswith(b"FRAME"):
            y = stream.read(width * height)
            u = stream.read(chroma[0] * chroma[1])
            v = stream.read(chroma[0] * chroma[1])
            if len(v) < chroma[0] * chroma[1]:
                return
            planes = [Image.frombytes("L", (width, height), y)]
            planes += [Image.frombytes("L", chroma, c).resize((width, height)) for c in (u, v)]
            yield Image.merge("YCbCr", planes).convert("RGB")


def mjpeg_frames(path: Path) -> Iterator[Image.Image]:
    """Frames of a stream of concatenated JPEGs, split at each start-of-image marker."""
    data = path.read_bytes()
    starts = [i for i in range(len(data) - 2) if data[i : i + 3] == b"\xff\xd8\xff"]
    for start, end in zip(starts, [*starts[1:], len(data)], strict=True):
        with Image.open(io.BytesIO(data[start:end])) as image:
            yield image.convert("RGB")


def folder_frames(path: Path) -> Iterator[Image.Image]:
    for file in sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        with Image.open(file) as image:
            yield image.convert("RGB")


def opencv_frames(source: str) -> Iterator[Image.Image]:
    try:
        import cv2  # type: ignore[import-not-found]
    except ImportError:
        raise SystemExit(f"{source}: videos other than .y4m/.mjpeg and cameras need OpenCV") from None
    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        raise SystemExit(f"OpenCV cannot open {source}")
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield Image.fromarray(bgr[:, :, ::-1])
    finally:
        capture.release()


def frames_of(source: str) -> Iterator[Image.Image]:
    path = Path(source)
    if path.is_dir():
        return folder_frames(path)
    if path.suffix.lower() == ".y4m":
        return y4m_frames(path)
    if path.suffix.lower() in {".mjpeg", ".mjpg"}:
        return mjpeg_frames(path)
    return opencv_frames(source)


def encode(image: Image.Image, size: tuple[int, int], quality: int) -> bytes:
    """The frame scaled to fit ``size`` (aspect kept), as JPEG."""
    image = image.copy()
    image.thumbnail(size)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def style_settings(args: argparse.Namespace) -> dict[str, object]:
    settings: dict[str, object] = {"type": "settings", "strength": args.strength, "format": "jpeg"}
    if args.preset is not None:
        settings["preset"] = args.preset
    elif args.style_id is not None:
        settings["style_id"] = args.style_id
    else:
        settings["styles"], settings["weights"] = args.styles, args.weights
    return settings


async def expect_settings(ws: ClientConnection) -> dict[str, object]:
    """Skip the server's hello; return its answer to our settings (or exit on an error)."""
    while True:
        message = json.loads(await ws.recv())
        if message["type"] == "settings":
            return message
        if message["type"] == "error":
            raise SystemExit(f"the server refused the settings: {message['title']}: {message['detail']}")


async def stream(args: argparse.Namespace) -> dict[str, object]:
    protocols = [SUBPROTOCOL]
    if args.key:  # the header works from Python; the subprotocol is how browsers send the key
        protocols.append("base64url.bearer." + base64.urlsafe_b64encode(args.key.encode()).decode().rstrip("="))
    width, height = (int(side) for side in args.size.split("x"))
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    errors: list[dict[str, object]] = []
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    # compression=None: JPEG frames do not deflate, and compressing each one costs CPU on both ends.
    async with connect(args.url, subprotocols=protocols, max_size=32 * 1024 * 1024, compression=None) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps(style_settings(args)))
        applied = await expect_settings(ws)
        print(f"painting with {applied['model']} {applied['style']}", file=sys.stderr)
        last: dict[str, object] = {}
        done_sending = asyncio.Event()

        async def receive() -> None:
            timing: dict[str, object] | None = None
            async for message in ws:
                if isinstance(message, str):
                    data = json.loads(message)
                    if data["type"] == "frame":
                        timing = data
                    elif data["type"] == "error":
                        errors.append(data)
                        print(f"error: {data['title']}: {data['detail']}", file=sys.stderr)
                    continue
                assert timing is not None, "a painted frame always follows its timing message"
                seq = int(timing["seq"])  # type: ignore[call-overload]
                latencies.append(time.perf_counter() - sent_at[seq])
                last.update(timing)
                if out:
                    (out / f"{seq:06d}.jpg").write_bytes(message)
                if done_sending.is_set() and seq == len(sent_at) - 1:
                    return  # the last frame sent is painted
                timing = None

        receiver = asyncio.create_task(receive())
        started = time.perf_counter()
        for seq, frame in enumerate(frames_of(args.source)):
            if seq >= args.frames:
                break
            due = started + seq / args.fps
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            data = encode(frame, (width, height), args.quality)
            sent_at[seq] = time.perf_counter()
            await ws.send(data)
        done_sending.set()
        if last.get("seq") == len(sent_at) - 1:
            receiver.cancel()
        # The last frame is never stale, so it comes back unless it fails.
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(receiver, args.drain_s)
        elapsed = time.perf_counter() - started
    painted = len(latencies)
    return {
        "sent": len(sent_at),
        "painted": painted,
        "dropped": int(last.get("dropped", 0)),  # type: ignore[call-overload]
        "errors": len(errors),
        "painted_fps": round(painted / elapsed, 2) if elapsed else 0.0,
        "latency_ms_median": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "style": applied["style"],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help=".y4m or .mjpeg file, folder of images, or (OpenCV) a video or camera index")
    parser.add_argument("--url", default="ws://127.0.0.1:8000/v1/live")
    parser.add_argument("--key", default=os.environ.get("ATELIER_API_KEY"), help="API key (or ATELIER_API_KEY)")
    style = parser.add_mutually_exclusive_group(required=True)
    style.add_argument("--preset", help="preset index or name, e.g. 3 or style-03")
    style.add_argument("--style-id", help="a style registered with POST /v1/styles")
    style.add_argument("--styles", help="a blend: comma list of style ids or preset:<name>")
    parser.add_argument("--weights", help="blend weights, with --styles")
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--size", default="320x240", help="frames are scaled to fit WIDTHxHEIGHT")
    parser.add_argument("--fps", type=float, default=15.0, help="frames sent per second")
    parser.add_argument("--frames", type=int, default=300, help="stop after this many frames")
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality of the frames sent")
    parser.add_argument("--out", help="folder for the painted frames (<seq>.jpg)")
    parser.add_argument("--drain-s", type=float, default=10.0, help="wait this long for the last painted frame")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    print(json.dumps(asyncio.run(stream(parse_args(argv)))))


if __name__ == "__main__":
    main()
