"""The ``atelier`` command line (Click). ``python -m atelier`` is the same.

Exit codes: 0 success; 2 a usage or input error (a missing file, an unreadable image, an unknown
preset: any 4xx problem), one line on stderr; 1 anything else (a server error, a server that does
not answer). Set ATELIER_DEBUG=1 for the traceback of an unexpected error.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import click

from atelier.errors import AtelierClientError, InputError, ProblemError
from atelier.inputs import FORMATS, IMAGE_SUFFIXES, SUFFIXES, Stylized
from service.brush import MAX_STROKE_SCALE, MIN_STROKE_SCALE

STDIO = "-"
EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
SERVER_ENV = "ATELIER_SERVER"
DEBUG_ENV = "ATELIER_DEBUG"
VERBOSE = False  # -v: the service's and ONNX Runtime's own logs on stderr
ORT_FATAL_ONLY = 4
TRAIN_INSTALL = "pip install 'atelier[train]'  (from a checkout: pip install -e '.[train]')"

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

MAIN_HELP = """Stylise photos with any painting, a registered style, a preset or a blend.

\b
  atelier stylize photo.jpg --preset style-07 -o out.png
  atelier stylize photos/ -o out/ --style painting.jpg --json
  cat photo.jpg | atelier stylize - --preset 3:0.5,12:0.5 > out.png
  atelier stylize photo.jpg --style painting.jpg --server http://127.0.0.1:8000
  atelier sheet photo.jpg -o sheet.png
  atelier video clip.mp4 --preset style-07 -o out.mp4
  atelier serve

Runs in process on the local model repository (ATELIER_MODEL_DIR, default ./models) unless
--server (or $ATELIER_SERVER) names a running service (for `video`: a job on that server).
Video needs the video extra: pip install 'atelier[video]'.
Shell completion: eval "$(_ATELIER_COMPLETE=bash_source atelier)" (zsh_source, fish_source for
those shells).
"""


# -- the runner: one line on stderr, the exit code ----------------------------------------------------


def fail(message: str) -> None:
    click.echo(f"atelier: error: {message}", err=True)


def message_of(exc: AtelierClientError) -> str:
    if isinstance(exc, ProblemError):
        return f"{exc.title}: {exc.detail}" if exc.detail else f"{exc.title} ({exc.status})"
    return str(exc)


def exit_code_of(exc: AtelierClientError) -> int:
    if isinstance(exc, InputError):
        return 2
    if isinstance(exc, ProblemError) and exc.is_client_error:
        return 2
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: runs ``cli`` and turns every error into one line and an exit code."""
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name="atelier", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        fail("aborted")
        return 1
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        fail(f"{exc.format_message()}{hint}")
        return 2
    except click.ClickException as exc:  # e.g. a file option that does not exist
        fail(exc.format_message())
        return exc.exit_code
    except AtelierClientError as exc:
        fail(message_of(exc))
        return exit_code_of(exc)
    except KeyboardInterrupt:
        fail("interrupted")
        return 130
    except BrokenPipeError:  # `atelier ... | head`: the reader left
        return 1
    except Exception as exc:  # a bug: say what, keep the traceback for ATELIER_DEBUG=1
        if os.environ.get(DEBUG_ENV):
            raise
        fail(f"unexpected {type(exc).__name__}: {exc} (ATELIER_DEBUG=1 shows the traceback)")
        return 1
    return result if isinstance(result, int) else 0


@click.group(context_settings=CONTEXT, help=MAIN_HELP)
@click.version_option(package_name="atelier", prog_name="atelier")
@click.option("-v", "--verbose", is_flag=True, help="show the service's logs on stderr")
def cli(verbose: bool) -> None:
    global VERBOSE
    VERBOSE = verbose


def quiet_logs() -> None:
    """For the commands that run the service's code in this process (not `serve`, which logs as the
    server does): its logs at ERROR on stderr as plain lines, or everything with -v."""
    level = logging.INFO if VERBOSE else logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for name in ("service", "onnx_export", "training"):
        logging.getLogger(name).setLevel(level)


# -- shared options -----------------------------------------------------------------------------------

server_option = click.option(
    "--server",
    envvar=SERVER_ENV,
    metavar="URL",
    help="a running Atelier service to use instead of the local models (env ATELIER_SERVER)",
)
api_key_option = click.option(
    "--api-key", envvar="ATELIER_API_KEY", metavar="KEY", help="bearer key for --server (env ATELIER_API_KEY)"
)
model_dir_option = click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="local model repository (default: $ATELIER_MODEL_DIR, else ./models of the checkout)",
)
json_option = click.option("--json", "as_json", is_flag=True, help="one JSON object per output on stdout")
stroke_scale_option = click.option(
    "--stroke-scale",
    type=click.FloatRange(MIN_STROKE_SCALE, MAX_STROKE_SCALE),
    metavar="S",
    help="brush size: 1 = the network's strokes, 2 = twice as big (default: the server's, by output size)",
)


def style_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """How `stylize` and `video` name a style: --style, --style-id, --preset, --model and --strength."""
    options = [
        click.option(
            "-s", "--style", type=click.Path(path_type=Path), metavar="IMAGE", help="a style image (a painting)"
        ),
        click.option("--style-id", metavar="ID[:W,...]", help="a registered style, or a blend ID:W,ID:W"),
        click.option("-p", "--preset", metavar="P[:W,...]", help="a preset index or name, or a blend 3:0.5,12:0.5"),
        click.option(
            "--model", metavar="NAME[/VERSION]", help="the model (default: the service's choice for the style)"
        ),
        click.option(
            "--strength", type=click.FloatRange(0, 1), default=1.0, show_default=True, help="0 = content, 1 = style"
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def engine(server: str | None, api_key: str | None, model_dir: Path | None) -> Any:
    """A ``Client`` for --server, else a ``Local`` on the model repository."""
    if server:
        from atelier.client import Client

        return Client(server, api_key)
    if model_dir is not None and not model_dir.is_dir():
        raise InputError(f"model repository {str(model_dir)!r} does not exist")
    quiet_logs()
    if not VERBOSE:
        import onnxruntime

        # ONNX Runtime prints its own lines when CUDA cannot load (a CPU machine with onnxruntime-gpu),
        # while the registry falls back to the CPU anyway; `atelier info` says what is active.
        onnxruntime.set_default_logger_severity(ORT_FATAL_ONLY)
    from atelier.local import Local

    return Local(model_dir)


def emit(payload: dict[str, Any]) -> None:
    click.echo(json.dumps(payload, sort_keys=True))


def progress(total: int) -> Any:
    """A tqdm bar on stderr for several images, off when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, unit="img", file=sys.stderr, disable=total < 2 or not sys.stderr.isatty(), leave=False)


# -- stylize ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    source: Path | None  # None: standard input
    dest: Path | None  # None: standard output
    label: str


def output_format(fmt: str | None, output: str | None) -> str:
    if fmt is not None:
        return fmt
    if output and output != STDIO:
        suffix = SUFFIXES.get(Path(output).suffix.lower())
        if suffix:
            return suffix
    return "png"


def images_in(folder: Path, skip: Path | None) -> Iterator[Path]:
    """Image files under ``folder`` (recursively, sorted), except those under ``skip`` (the output)."""
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        if skip is not None and path.resolve().is_relative_to(skip):
            continue
        yield path


def plan(inputs: Sequence[str], output: str | None, fmt: str) -> list[Item]:
    """Each input's destination. One file: ``-o FILE`` (or a folder), default ``./<stem>.stylized.<ext>``;
    ``-``: standard output unless ``-o FILE``; folders and several inputs: ``-o FOLDER``, keeping
    each image's path relative to its folder."""
    ext = EXTENSIONS[fmt]
    if STDIO in inputs:
        if len(inputs) > 1:
            raise InputError("'-' (standard input) cannot be combined with other inputs")
        if output is not None and output != STDIO and Path(output).is_dir():
            raise InputError(f"-o {output!r} is a folder; give a file name for standard input")
        dest = None if output in (None, STDIO) else Path(output)
        return [Item(None, dest, "<stdin>")]
    paths = [Path(p) for p in inputs]
    for path in paths:
        if not path.exists():
            raise InputError(f"{str(path)!r} does not exist")
    if len(paths) == 1 and paths[0].is_file():
        src = paths[0]
        if output == STDIO:
            return [Item(src, None, str(src))]
        if output is None:
            return [Item(src, Path(f"{src.stem}.stylized{ext}"), str(src))]
        out = Path(output)
        dest = out / f"{src.stem}{ext}" if out.is_dir() or output.endswith(os.sep) else out
        return [Item(src, dest, str(src))]
    if output is None or output == STDIO:
        raise InputError("a folder or several inputs need -o/--output FOLDER")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {output!r} is a file; a folder or several inputs need a folder")
    skip = out.resolve()
    items: list[Item] = []
    for path in paths:
        if path.is_dir():
            # One folder maps onto the output folder; each of several keeps its own name inside it.
            base = out if len(paths) == 1 else out / path.resolve().name
            items += [Item(f, base / f.relative_to(path).with_suffix(ext), str(f)) for f in images_in(path, skip)]
        else:
            items.append(Item(path, out / f"{path.stem}{ext}", str(path)))
    if not items:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {', '.join(inputs)}")
    seen: dict[Path, str] = {}
    for item in items:
        assert item.dest is not None
        if item.dest in seen:
            raise InputError(f"{seen[item.dest]!r} and {item.label!r} would both be written to {str(item.dest)!r}")
        seen[item.dest] = item.label
    return items


def style_fields(style: Path | None, style_id: str | None, preset: str | None, model: str | None) -> dict[str, Any]:
    """The API's style keywords from the options; ``A:0.3,B:0.7`` is a blend of presets or style ids."""
    given = [name for name, value in (("--style", style), ("--style-id", style_id), ("--preset", preset)) if value]
    if len(given) != 1:
        raise InputError(f"give exactly one of --style, --style-id or --preset (got {', '.join(given) or 'none'})")
    fields: dict[str, Any] = {"model": model}
    if style is not None:
        fields["style"] = style
        return fields
    text = style_id if style_id is not None else preset
    assert text is not None
    if "," not in text and ":" not in text:
        fields["style_id" if style_id is not None else "preset"] = text
        return fields
    names, weights = [], []
    for part in text.split(","):
        name, _, weight = part.strip().rpartition(":") if ":" in part else (part.strip(), "", "")
        if not name:
            raise InputError(f"blend item {part!r} has no name; write NAME:WEIGHT,NAME:WEIGHT")
        names.append(f"preset:{name}" if preset is not None else name)
        weights.append(weight or "1")
    fields["styles"] = ",".join(names)
    fields["weights"] = ",".join(weights)
    return fields


STYLIZE_HELP = """Stylise images: files, folders (recursive, relative paths kept in -o) or - for stdin.

\b
  atelier stylize photo.jpg --preset style-07 -o out.png
  atelier stylize photo.jpg --preset 3:0.5,12:0.5 --strength 0.8 -o blend.jpg
  atelier stylize photos/ --style painting.jpg -o out/ --max-side 1024 --format jpeg
  atelier stylize photo.jpg --style-id 3f2a...e9 --preserve-color --json
  cat photo.jpg | atelier stylize - --preset 4 -o - > out.png
  atelier stylize photos/ -o out/ --preset 4 --server http://127.0.0.1:8000

A folder reuses one loaded model and one style embedding and runs its images concurrently
through the service's pipeline. Without -o, one file is written to ./<name>.stylized.<ext>;
'-' reads standard input and writes standard output.
"""


@cli.command("stylize", help=STYLIZE_HELP, context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, required=True, metavar="PHOTO...")
@click.option("-o", "--output", metavar="PATH", help="output file, folder, or - for standard output")
@style_options
@click.option("--preserve-color", is_flag=True, help="keep the photo's colours, stylise the luminance")
@click.option("--max-side", type=click.IntRange(min=1), metavar="PX", help="longest side of the output")
@stroke_scale_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="output format (default: from -o's suffix, else png)")
@click.option("--quality", type=click.IntRange(1, 100), default=90, show_default=True, help="JPEG/WebP quality")
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="images in flight at once (default 16; 4 on --server)")
@server_option
@api_key_option
@model_dir_option
@json_option
def stylize_command(
    inputs: tuple[str, ...],
    output: str | None,
    style: Path | None,
    style_id: str | None,
    preset: str | None,
    model: str | None,
    strength: float,
    preserve_color: bool,
    max_side: int | None,
    stroke_scale: float | None,
    fmt: str | None,
    quality: int,
    jobs: int | None,
    server: str | None,
    api_key: str | None,
    model_dir: Path | None,
    as_json: bool,
) -> int:
    fmt = output_format(fmt, output)
    items = plan(inputs, output, fmt)
    if as_json and any(item.dest is None for item in items):
        raise InputError("--json and standard output for the image cannot go together")
    fields = style_fields(style, style_id, preset, model)
    if style is not None:
        from atelier.inputs import image_bytes

        fields["style"] = image_bytes(style, "style image")  # read once, before any model loads
    options = {
        "strength": strength,
        "preserve_color": preserve_color,
        "max_side": max_side,
        "format": fmt,
        "quality": quality,
        "stroke_scale": stroke_scale,
    }
    sources: list[Any] = []
    for item in items:
        if item.source is None:
            data = sys.stdin.buffer.read()
            if not data:
                raise InputError("nothing on standard input")
            sources.append(data)
        else:
            sources.append(item.source)
    started = time.perf_counter()
    failures: list[AtelierClientError] = []
    with engine(server, api_key, model_dir) as runner, progress(len(items)) as bar:
        for index, result in runner.stylize_many(sources, concurrency=jobs, **fields, **options):
            item = items[index]
            bar.update(1)
            if isinstance(result, Stylized):
                write(item, result, as_json, bar)
            else:
                failures.append(result)
                bar.clear()
                fail(f"{item.label}: {message_of(result)}")
                if as_json:
                    emit({"input": item.label, "error": message_of(result), "exit_code": exit_code_of(result)})
    if len(items) > 1:
        seconds = time.perf_counter() - started
        done = len(items) - len(failures)
        click.echo(f"{done} of {len(items)} images in {seconds:.1f} s ({done / seconds:.2f} images/s)", err=True)
    codes = {exit_code_of(f) for f in failures}
    return 1 if 1 in codes else 2 if codes else 0


def write(item: Item, result: Stylized, as_json: bool, bar: Any) -> None:
    if item.dest is None:
        sys.stdout.buffer.write(result.data)
        sys.stdout.buffer.flush()
        return
    item.dest.parent.mkdir(parents=True, exist_ok=True)
    item.dest.write_bytes(result.data)
    if as_json:
        emit(
            {
                "input": item.label,
                "output": str(item.dest),
                "width": result.width,
                "height": result.height,
                "media_type": result.media_type,
                "model": result.model,
                "style_id": result.style_id,
                "bytes": len(result.data),
            }
        )
    elif bar.disable:
        click.echo(f"{item.label} -> {item.dest} ({result.width}x{result.height})")


# -- video ------------------------------------------------------------------------------------------

VIDEO_HELP = """Stylise a video clip (MP4, WebM, MOV, animated GIF) into H.264 MP4, audio copied.

\b
  atelier video clip.mp4 --preset style-07 -o out.mp4
  atelier video clip.mp4 --style painting.jpg --max-side 720 --consistency 0.8 -o out.mp4
  atelier video clip.mp4 --preset 5 --stroke-scale 2 -o big-strokes.mp4
  atelier video clip.mp4 --preset 3:0.5,12:0.5 --server http://127.0.0.1:8000 --json

In process it renders as the service's video jobs do (one style embedding for the clip, each
frame blended with the previous one by optical flow); with --server it is a job there
(POST /v1/videos), polled until done and downloaded. A progress bar shows on a terminal.
Without -o the clip is written to ./<name>.stylized.mp4 (Matroska when its audio cannot go
into MP4; the output file name is kept either way).
"""


@cli.command("video", help=VIDEO_HELP, context_settings=CONTEXT)
@click.argument("clip", metavar="CLIP")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH", help="output file")
@style_options
@click.option("--preserve-color", is_flag=True, help="keep the clip's colours, stylise the luminance")
@click.option("--max-side", type=click.IntRange(min=1), metavar="PX", help="longest side of the output frames")
@stroke_scale_option
@click.option(
    "--consistency",
    type=click.FloatRange(0, 0.95),
    help="weight of the previous stylised frame, 0 = frame by frame (default: the service's, 0.9)",
)
@server_option
@api_key_option
@model_dir_option
@json_option
def video_command(
    clip: str,
    output: Path | None,
    style: Path | None,
    style_id: str | None,
    preset: str | None,
    model: str | None,
    strength: float,
    preserve_color: bool,
    max_side: int | None,
    stroke_scale: float | None,
    consistency: float | None,
    server: str | None,
    api_key: str | None,
    model_dir: Path | None,
    as_json: bool,
) -> int:
    from atelier.inputs import image_bytes, video_path

    source = video_path(clip)  # a missing clip is said before any model loads
    target = output if output is not None else Path(f"{source.stem}.stylized.mp4")
    fields = style_fields(style, style_id, preset, model)
    if style is not None:
        fields["style"] = image_bytes(style, "style image")
    from tqdm import tqdm

    with (
        engine(server, api_key, model_dir) as runner,
        tqdm(unit="frame", file=sys.stderr, disable=not sys.stderr.isatty(), leave=False) as bar,
    ):

        def on_progress(done: int, total: int) -> None:
            if bar.total != total:
                bar.reset(total=total)
            bar.update(done - bar.n)

        result = runner.stylize_video(
            source,
            target,
            **fields,
            strength=strength,
            preserve_color=preserve_color,
            max_side=max_side,
            consistency=consistency,
            on_progress=on_progress,
            stroke_scale=stroke_scale,
        )
    payload = {
        "input": clip,
        "output": str(result.output),
        "frames": result.frames,
        "seconds": round(result.seconds, 3),
        "media_type": result.media_type,
        "model": result.model,
        "bytes": result.output.stat().st_size,
        "stroke_scale": result.stroke_scale,
    }
    if result.job_id is not None:
        payload["job_id"] = result.job_id
    if as_json:
        emit(payload)
    else:
        click.echo(f"{clip} -> {result.output} ({result.frames} frames in {result.seconds:.1f} s)")
    return 0


# -- sheet --------------------------------------------------------------------------------------------

SHEET_HELP = """Every preset on one photo, labelled, on one contact sheet (the photo itself first).

\b
  atelier sheet photo.jpg -o sheet.png
  atelier sheet photo.jpg --tile 192 --columns 9 -o sheet.jpg --json
"""


@cli.command("sheet", help=SHEET_HELP, context_settings=CONTEXT)
@click.argument("photo", metavar="PHOTO")
@click.option("-o", "--output", default="sheet.png", show_default=True, metavar="PATH", help="the sheet, or -")
@click.option("--tile", type=click.IntRange(32, 1024), default=256, show_default=True, help="longest side of a tile")
@click.option("--columns", type=click.IntRange(min=1), help="tiles per row (default: a near-square grid)")
@click.option("--model", metavar="NAME[/VERSION]", help="the N-style model (default: the presets model)")
@server_option
@api_key_option
@model_dir_option
@json_option
def sheet_command(
    photo: str,
    output: str,
    tile: int,
    columns: int | None,
    model: str | None,
    server: str | None,
    api_key: str | None,
    model_dir: Path | None,
    as_json: bool,
) -> int:
    from atelier.inputs import image_bytes
    from atelier.sheet import contact_sheet

    if as_json and output == STDIO:
        raise InputError("--json and the sheet on standard output cannot go together")
    data = sys.stdin.buffer.read() if photo == STDIO else image_bytes(Path(photo), "photo")
    fmt = output_format(None, output)
    with engine(server, api_key, model_dir) as runner:
        listed = runner.list_styles(limit=1)["presets"]
        presets = [p for p in listed if model in (None, p["model"], p["model"].split("/")[0])]
        if not presets:
            where = "server" if server else "model repository"
            raise InputError(f"no presets{' of ' + model if model else ''} on this {where}")

        def one(preset: dict[str, Any]) -> Stylized:
            return runner.stylize_bytes(data, preset=str(preset["index"]), model=preset["model"], max_side=tile)

        with ThreadPoolExecutor(max_workers=8) as pool, progress(len(presets)) as bar:
            tiles = []
            for result in pool.map(one, presets):
                tiles.append(result)
                bar.update(1)
    labels = [f"{p['index']} {p['name']}" for p in presets]
    sheet = contact_sheet(data, [t.image() for t in tiles], labels, tile, columns)
    encoded = encode_sheet(sheet, fmt)
    if output == STDIO:
        sys.stdout.buffer.write(encoded)
        return 0
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_bytes(encoded)
    payload = {
        "output": output,
        "width": sheet.width,
        "height": sheet.height,
        "presets": len(presets),
        "model": presets[0]["model"],
        "bytes": len(encoded),
    }
    if as_json:
        emit(payload)
    else:
        click.echo(f"wrote {output} ({sheet.width}x{sheet.height}, {len(presets)} presets of {payload['model']})")
    return 0


def encode_sheet(sheet: Any, fmt: str) -> bytes:
    import io

    buffer = io.BytesIO()
    sheet.save(buffer, format={"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt], quality=90)
    return buffer.getvalue()


# -- models, info -------------------------------------------------------------------------------------

MODELS_HELP = """Installed models, with provenance and parity figures from their manifests.

\b
  atelier models
  atelier models --json | jq .parity
  atelier models --server http://127.0.0.1:8000 --json
"""


@cli.command("models", help=MODELS_HELP, context_settings=CONTEXT)
@server_option
@api_key_option
@model_dir_option
@json_option
def models_command(server: str | None, api_key: str | None, model_dir: Path | None, as_json: bool) -> int:
    if server:
        from atelier.client import Client

        with Client(server, api_key) as client:
            rows = client.list_models()
    else:
        from atelier.manifests import installed_models

        quiet_logs()
        rows = installed_models(model_dir)
    for row in rows:
        if as_json:
            emit(row)
        else:
            click.echo(describe_model(row))
    return 0


def describe_model(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"{row['name']}/{row['version']}  REFUSED: {row['error']}"
    label = f"{row['name']}/{row['version']}"
    parts = [label, row["kind"], f"embedding {row['embedding_size']}"]
    if row.get("presets"):
        parts.append(f"{row['presets'] if isinstance(row['presets'], int) else len(row['presets'])} presets")
    if row.get("default"):
        parts.append("default")
    provenance = row.get("provenance")
    lines = ["  ".join(parts)]
    if provenance:
        lines.append(f"    source: {provenance['source']} ({provenance['licence']})")
    if row.get("parity"):
        figures = ", ".join(f"{size}: {diff:.2g}" for size, diff in sorted(row["parity"].items()))
        lines.append(f"    parity vs PyTorch (max abs diff): {figures}")
    if row.get("providers"):
        lines.append(f"    providers: {', '.join(row['providers'])}")
    return "\n".join(lines)


INFO_HELP = """Versions, execution providers, usable cores and the model repository.

\b
  atelier info
  atelier info --json
"""


@cli.command("info", help=INFO_HELP, context_settings=CONTEXT)
@model_dir_option
@json_option
def info_command(model_dir: Path | None, as_json: bool) -> int:
    import onnxruntime

    from onnx_export.manifest import list_models
    from service.config import Settings, usable_cores

    settings = Settings(model_dir=model_dir) if model_dir is not None else Settings()
    found = list_models(settings.model_dir) if settings.model_dir.is_dir() else {}
    payload = {
        "atelier": package_version("atelier"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "onnxruntime": onnxruntime.__version__,
        "numpy": package_version("numpy"),
        "pillow": package_version("pillow"),
        "torch": package_version("torch"),  # the train extra; None when it is not installed
        "available_providers": onnxruntime.get_available_providers(),
        "requested_providers": settings.providers,
        "usable_cores": usable_cores(),
        "model_dir": str(settings.model_dir),
        "models": [f"{name}/{v}" for name, versions in found.items() for v in versions],
    }
    if as_json:
        emit(payload)
    else:
        for key, value in payload.items():
            click.echo(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
    return 0


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# -- serve, export, train -----------------------------------------------------------------------------

SERVE_HELP = """The HTTP service: exactly what `make run` starts (python -m service), with the same
ATELIER_* settings; --host and --port set HOST and PORT.

\b
  atelier serve
  atelier serve --host 0.0.0.0 --port 8080
  ATELIER_API_KEYS=k1,k2 ATELIER_PROCESSES=2 atelier serve
"""


@cli.command("serve", help=SERVE_HELP, context_settings=CONTEXT)
@click.option("--host", metavar="ADDR", help="bind address (default: $HOST, else ATELIER_HOST, 127.0.0.1)")
@click.option("--port", type=click.IntRange(0, 65535), help="port (default: $PORT, else ATELIER_PORT, 8000)")
def serve_command(host: str | None, port: int | None) -> int:
    # Several processes re-import the app from the environment, so the overrides travel there.
    if host is not None:
        os.environ["HOST"] = host
    if port is not None:
        os.environ["PORT"] = str(port)
    from service.__main__ import main as serve_main

    serve_main()
    return 0


PASSTHROUGH = {**CONTEXT, "ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


def require_torch(command: str) -> None:
    try:
        import torch  # noqa: F401  (the train extra; the service never needs it)
    except ImportError:
        raise InputError(f"`atelier {command}` needs PyTorch, the train extra: {TRAIN_INSTALL}") from None


@cli.command("export", context_settings=PASSTHROUGH, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def export_command(args: tuple[str, ...]) -> int:
    """Build model versions into the repository (python -m onnx_export; --help for its options).

    \b
      atelier export defaults
      atelier export checkpoint runs/smoke/checkpoint.pt --name smoke --replace
    """
    require_torch("export")
    from onnx_export.__main__ import main as export_main

    return export_main(list(args))


@cli.command("train", context_settings=PASSTHROUGH, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train_command(args: tuple[str, ...]) -> int:
    """Train a style network (python -m training.train; --help for its options).

    \b
      atelier train --mode nstyle --content photos/ --style paintings/ --out runs/mine
    """
    require_torch("train")
    from training.train import main as train_main

    return train_main(list(args))
