"""The command line: the same engine as the plugin, for people and scripts.

    python ai_tagger.py analyze VIDEO [--json]       analyse one local file, no Stash needed
    python ai_tagger.py demo                          make a sample video and analyse it
    python ai_tagger.py run --stash-url URL --mode MODE [--scene-id ID] [--dry-run]
    python ai_tagger.py doctor [--stash-url URL]     check this machine and the connection
    python ai_tagger.py serve [--host H --port P]     the worker service (tagger.apps.worker)
    python ai_tagger.py package [--out DIR]          build the plugin zip and source index

Commands only parse flags into a configuration; the work is in the modules they call. A
``TaggerError`` becomes one line on stderr and exit code 1 (the traceback too with
AI_TAGGER_DEBUG=1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

from tagger import __version__
from tagger.errors import ConfigError, TaggerError
from tagger.stashside.bootstrap import data_dir, ensure_runtime
from tagger.stashside.protocol import StashLog, StdoutGuard, guard_stdout


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ai_tagger.py", description="stash-ai-tagger: tag a Stash "
                                     "library from what its videos show.")
    parser.add_argument("--version", action="version", version=f"stash-ai-tagger {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    analyze = commands.add_parser("analyze", help="analyse one video file (no Stash needed)")
    analyze.add_argument("video", help="path of a video file")
    analyze.add_argument("--json", action="store_true", help="print the full result as JSON")
    analyze.add_argument("--evidence", metavar="DIR", help="write a JPEG contact sheet per tag, marker, "
                         "face track, text and studio: the frames and scores behind it")
    _add_common(analyze)

    demo = commands.add_parser("demo", help="make a sample video and analyse it (no Stash needed)")
    demo.add_argument("--json", action="store_true", help="print the full result as JSON")
    demo.add_argument("--evidence", metavar="DIR", help="write contact sheets (see analyze)")
    _add_common(demo)

    run = commands.add_parser("run", help="run a plugin mode against a Stash server")
    run.add_argument("--mode", required=True,
                     help="untagged, queue, scene, all, gallery, undo, report, maintenance")
    run.add_argument("--scene-id", help="the scene for --mode scene (or undo of one scene)")
    run.add_argument("--run-id", help="with --mode undo: undo only this run (its id is in each run's output)")
    run.add_argument("--dry-run", action="store_true", help="analyse and report; change nothing")
    run.add_argument("--limit", type=int, help="at most this many scenes")
    _add_stash(run)
    _add_common(run)

    doctor = commands.add_parser("doctor", help="check Python, packages, providers, models, Stash")
    _add_stash(doctor)
    _add_common(doctor)

    serve = commands.add_parser("serve", help="run the worker service (Stash's plugin forwards its tasks)")
    serve.add_argument("--host", help="address to listen on (default worker_host: 127.0.0.1, this machine)")
    serve.add_argument("--port", type=int, help="port to listen on (default worker_port: 9977)")
    _add_common(serve)

    package = commands.add_parser("package", help="build the plugin zip and a source index")
    package.add_argument("--out", default="dist", help="output folder (default: dist)")
    return parser


def _add_stash(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stash-url", help="Stash's address, e.g. http://localhost:9999")
    parser.add_argument("--api-key", help="Stash API key (Settings > Security); visible to anyone who "
                        "lists processes: prefer AI_TAGGER_API_KEY or --api-key-file")
    parser.add_argument("--api-key-file", metavar="PATH",
                        help="read the Stash API key from this file (its first line)")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="a config.yaml (default: config.yaml in the plugin folder)")
    parser.add_argument("--interval", type=float, help="seconds between sampled frames")
    parser.add_argument("--sampling", help="interval or keyframes")
    parser.add_argument("--analyzers", help="comma-separated families: faces,content,text,shots (the "
                        "default) or any other registered one")
    parser.add_argument("--path-mapping", action="append", metavar="STASH=LOCAL",
                        help="map Stash's path prefix to this machine's (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug lines")


def config_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration layer given on the command line (only flags that were set)."""
    names = {"interval": "interval", "sampling": "sampling", "analyzers": "analyzers",
             "stash_url": "stash_url", "api_key": "api_key", "host": "worker_host", "port": "worker_port"}
    flags = {key: getattr(args, attr) for attr, key in names.items() if getattr(args, attr, None) is not None}
    if getattr(args, "path_mapping", None):
        flags["path_mappings"] = ";".join(args.path_mapping)
    if getattr(args, "api_key_file", None):
        flags["api_key"] = read_secret_file(args.api_key_file, "--api-key-file")
    return flags


def read_secret_file(path: str, what: str) -> str:
    """The first line of a file holding a secret (so it never appears in the process list).

    Raises:
        ConfigError: the file cannot be read or is empty.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{what}: cannot read {path} ({type(error).__name__}); "
                          "give a readable UTF-8 text file holding the key") from None
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise ConfigError(f"{what}: {path} is empty; put the key on its first line")
    return secret


def main(argv: list[str], plugin_dir: Path) -> int:
    args = build_parser().parse_args(argv)
    log = _CliLog(verbose=getattr(args, "verbose", False))
    if args.command == "package":
        from tagger.apps.package import build_package

        print("\n".join(build_package(plugin_dir, Path(args.out))))
        return 0
    guard = guard_stdout()  # --json output must not be corrupted by any library's print
    try:
        if args.command == "doctor":
            if _venv_ready(plugin_dir):  # check the environment the plugin really runs in
                ensure_runtime(plugin_dir, data_dir(plugin_dir), [str(plugin_dir / "ai_tagger.py"), *argv],
                               log.log, log.progress, install=False, before_exec=guard.restore)
            from tagger.apps.doctor import run_doctor

            lines, ok = run_doctor(plugin_dir, args, config_flags(args))
            guard.write_text("\n".join(lines) + "\n")
            return 0 if ok else 1
        ensure_runtime(plugin_dir, data_dir(plugin_dir), [str(plugin_dir / "ai_tagger.py"), *argv],
                       log.log, log.progress, before_exec=guard.restore)
        return _dispatch(args, plugin_dir, log, guard)
    except TaggerError as error:
        if os.environ.get("AI_TAGGER_DEBUG") == "1":
            traceback.print_exc()
        log.error(str(error))
        guard.write_text("")
        return 1


def _dispatch(args: argparse.Namespace, plugin_dir: Path, log: StashLog, guard: StdoutGuard) -> int:
    from tagger.run.runner import load_config

    if args.command in ("analyze", "demo"):
        from tagger.engine.engine import Engine

        config = load_config(plugin_dir, None, log, config_path=args.config, flags=config_flags(args))
        video = args.video if args.command == "analyze" else str(_demo_video(plugin_dir, log))
        if args.command == "demo" and not config.studios:
            config = replace(config, studios=DEMO_STUDIOS)
        engine = Engine(config, data_dir(plugin_dir), log.log)
        analysed = engine.analyze(video, progress=log.progress)
        result = analysed.to_dict()
        if args.evidence:
            from tagger.engine.evidence import write_evidence

            sheets = write_evidence(analysed, Path(args.evidence), rules=engine.rules)
            result["evidence"] = [str(path) for path in sheets]
            log.info(f"wrote {len(sheets)} contact sheet(s) to {args.evidence}")
        guard.write_text(json.dumps(result, indent=2) + "\n" if args.json else format_summary(result))
        return 0
    if args.command == "run":
        return _run(args, plugin_dir, log, guard)
    if args.command == "serve":
        from tagger.apps.worker import serve

        guard.restore()  # the service's jobs print nothing here; uvicorn may log to the terminal
        config = load_config(plugin_dir, None, log, config_path=args.config, flags=config_flags(args))
        serve(plugin_dir, config, log)
        return 0
    raise AssertionError(args.command)


def _run(args: argparse.Namespace, plugin_dir: Path, log: StashLog, guard: StdoutGuard) -> int:
    from tagger.run.modes import SELECTIONS
    from tagger.run.runner import load_config, open_run
    from tagger.stashside.stash import StashClient

    flags = config_flags(args)
    base = load_config(plugin_dir, None, log, config_path=args.config, flags=flags)
    if not base.stash_url:
        raise ConfigError("stash_url: not set; give --stash-url http://host:9999 or set it in config.yaml")
    client = StashClient(url=base.stash_url, api_key=base.api_key or None)
    config = load_config(plugin_dir, client, log, config_path=args.config, flags=flags)
    task_args: dict[str, Any] = {"mode": args.mode}
    if args.scene_id:
        task_args["scene_id"] = args.scene_id
    if args.limit is not None:
        task_args["limit"] = args.limit
    if args.run_id:
        task_args["run_id"] = args.run_id
    mode = args.mode
    if args.dry_run:
        if args.mode not in (*SELECTIONS, "report"):
            raise ConfigError(f"--dry-run: mode {args.mode!r} has no dry run; "
                              f"use one of {', '.join(SELECTIONS)}")
        task_args["selection"] = args.mode if args.mode != "report" else None
        mode = "report"
    output = open_run(config, client, data_dir(plugin_dir), log, mode, task_args)
    guard.write_text(json.dumps(output, indent=2) + "\n")
    return 0


DEMO_STUDIOS = (("Brand X", ("BrandX",)), ("Other Studio", ()))
"""Studios the demo matches its watermark against (the plugin uses Stash's studios)."""


def _demo_video(plugin_dir: Path, log: StashLog) -> Path:
    """The bundled default input: a sample video the project makes itself, with cuts, a black
    span and a studio watermark in a corner."""
    from tagger.media.sample import make_sample_video

    path = data_dir(plugin_dir) / "demo" / "sample-v2.mp4"
    if not path.exists():
        log.info(f"making a 60-s sample video at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.mp4")
        make_sample_video(tmp, text=("BRANDX.COM", 5.0, 55.0, "bottom-right"))
        os.replace(tmp, path)
    return path


def format_summary(result: dict[str, Any]) -> str:
    """A readable summary of an analysis result."""
    lines = [f"{result['file']}",
             f"  {result['duration']:.1f} s at {result['fps']:.2f} fps, "
             f"{result['frames_analysed']} frames analysed"]
    lines.append(f"  shots: {len(result['shots'])}")
    for shot in result["shots"]:
        lines.append(f"    {_clock(shot['start'])} - {_clock(shot['end'])}")
    for span in result["technical"]:
        lines.append(f"  {span['kind']}: {_clock(span['start'])} - {_clock(span['end'])}")
    for tag in result["tags"]:
        lines.append(f"  tag {tag['name']}: score {tag['score']:.2f}, {tag['seconds']:.0f} s")
    for marker in result["markers"]:
        lines.append(f"  marker {marker['title']}: {_clock(marker['start'])} - {_clock(marker['end'])}")
    for face in result["faces"]:
        lines.append(f"  face #{face['track']}: {_clock(face['start'])} - {_clock(face['end'])}, "
                     f"{face['appearances']} appearances")
    for text in result["text"]:
        lines.append(f"  text {text['text']!r}: {_clock(text['start'])} - {_clock(text['end'])}")
    if result.get("studio"):
        studio = result["studio"]
        evidence = "; ".join(studio["evidence"])
        lines.append(f"  studio: {studio['name']} (score {studio['score']:.2f}; {evidence})")
    for warning in result.get("warnings", []):
        lines.append(f"  warning: {warning}")
    for sheet in result.get("evidence", []):
        lines.append(f"  evidence: {sheet}")
    timings = ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in result["timings"].items())
    lines.append(f"  time: {timings}")
    return "\n".join(lines) + "\n"


def _clock(seconds: float) -> str:
    minutes, rest = divmod(float(seconds), 60)
    return f"{int(minutes):d}:{rest:05.2f}"


def _venv_ready(plugin_dir: Path) -> bool:
    from tagger.stashside.bootstrap import STAMP_NAME, venv_python

    venv = data_dir(plugin_dir) / "venv"
    return venv_python(venv).exists() and (venv / STAMP_NAME).exists()


class _CliLog(StashLog):
    """Stash's log interface, written for people: 'level: text', debug only with -v."""

    def __init__(self, *, verbose: bool) -> None:
        super().__init__(sys.stderr, plain=True)
        self._verbose = verbose

    def log(self, level: str, message: str) -> None:
        if level in ("trace", "debug") and not self._verbose:
            return
        super().log(level, message)
