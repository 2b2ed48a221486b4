"""The ``edgefilter`` command line.

Every user mistake ends as one line ``edgefilter: error: ...`` (every problem for a
bad config) and a documented exit status, never a traceback:
0 ok, 1 runtime failure, 64 usage, 66 missing input, 69 unavailable (model/CUDA/bind),
78 bad configuration (systemd's unit does not restart on it).
"""
from __future__ import annotations

import os

# One BLAS thread: drift statistics share the cores with the model's own thread pool; two OpenBLAS
# threads competing with it made an update 4x slower on 2 cores. Must be set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import logging
import sys
from typing import Sequence

from . import __version__
from .errors import (EXIT_CONFIG, EXIT_DATAERR, EXIT_ERROR, EXIT_NOINPUT, EXIT_UNAVAILABLE, ConfigError,
                     EdgefilterError, MessageError, ModelError, PublishError, ReferenceError_, SourceError,
                     StateError)

log = logging.getLogger("edgefilter")


def _setup_logging(level: str) -> None:
    # Under systemd the journal adds its own timestamps.
    fmt = "%(levelname)s %(name)s: %(message)s" if "JOURNAL_STREAM" in os.environ \
        else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr)
    logging.getLogger("edgefilter").setLevel(level.upper())


def _exit_status(exc: EdgefilterError) -> int:
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG
    if isinstance(exc, (ModelError, PublishError)):
        return EXIT_UNAVAILABLE
    if isinstance(exc, (SourceError, ReferenceError_)):
        return EXIT_NOINPUT
    if isinstance(exc, (MessageError, StateError)):
        return EXIT_DATAERR
    return EXIT_ERROR


def cmd_run(args: argparse.Namespace) -> int:
    from .config import load_config
    cfg = load_config(args.config)
    _setup_logging(args.log_level or cfg.log_level)
    from .daemon import Daemon
    return Daemon(cfg, config_path=args.config).run()


def cmd_check_config(args: argparse.Namespace) -> int:
    from .config import load_config, resolve_path
    try:
        cfg = load_config(args.file)
    except ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        print(f"{args.file}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return EXIT_CONFIG
    missing = []
    model = resolve_path(cfg, cfg.model.path)
    if not model.exists():
        missing.append(f"{args.file}: model.path: file not found: {model}")
    for m in missing:
        print(m, file=sys.stderr)
    if missing:
        return EXIT_CONFIG
    from .source import local_path
    for i, src in enumerate(cfg.sources):
        path = local_path(src.url, cfg.base_dir)
        if path is not None and not os.path.exists(path):
            print(f"{args.file}: warning: sources[{i}].url ({src.name}): file not found: {path} (the daemon "
                  f"counts this source as failed, and exits {EXIT_NOINPUT} when no other source runs)",
                  file=sys.stderr)
    print(f"{args.file}: OK ({len(cfg.sources)} source(s): {', '.join(s.name for s in cfg.sources)})")
    return 0


def cmd_subscribe(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level or "info")
    from .client import cli_subscribe
    return cli_subscribe(connect=args.connect, out=args.out, count=args.count, duration=args.duration,
                         topics=args.topic or None, server_key=args.server_key, client_cert=args.client_cert)


def cmd_reference_build(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level or "info")
    from .reference import cli_build
    return cli_build(args.out, args.inputs, args.config)


def cmd_report(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level or "info")
    from .report import cli_report
    return cli_report(args.input, args.out, threshold=args.threshold)


def cmd_bench(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level or "warning")
    from .bench import cli_bench
    return cli_bench(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgefilter", description="Keep the camera frames that show something "
                                     "new; publish them and drift statistics over ZeroMQ.")
    parser.add_argument("--version", action="version", version=f"edgefilter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, help: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None,
                       help="override the log level")
        p.set_defaults(func=func)
        return p

    p = add("run", "run the daemon", cmd_run)
    p.add_argument("-c", "--config", default="config.yaml", help="config file (default: config.yaml)")

    p = add("check-config", "check a config file: prints OK or every problem with its line", cmd_check_config)
    p.add_argument("file", help="config file")

    p = add("subscribe", "receive kept frames: write JPEGs and a manifest, report seq gaps", cmd_subscribe)
    p.add_argument("--connect", default="tcp://127.0.0.1:5556", help="publisher endpoint")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--count", type=int, default=None, help="stop after this many frames")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--topic", action="append", help="topic prefix to receive (repeatable; default frames and drift)")
    p.add_argument("--server-key", default=None, help="CURVE: the server's public key certificate")
    p.add_argument("--client-cert", default=None, help="CURVE: this client's secret key certificate")

    ref = sub.add_parser("reference", help="drift references", description="drift references")
    rsub = ref.add_subparsers(dest="reference_command", metavar="ACTION")
    rsub.required = True
    p = rsub.add_parser("build", help="embed videos, image directories or streams into a reference file",
                        description="embed videos, image directories or streams into a reference file")
    p.add_argument("--out", required=True, help="reference file to write (.npz)")
    p.add_argument("-c", "--config", default=None, help="config whose model to use (default: the built-in model)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None)
    p.add_argument("inputs", nargs="+", help="video files, image directories or stream URLs")
    p.set_defaults(func=cmd_reference_build)

    p = add("report", "turn a subscriber's output directory into an HTML page with PNGs", cmd_report)
    p.add_argument("input", help="directory written by `edgefilter subscribe`")
    p.add_argument("--out", default=None, help="report directory (default: INPUT/report)")
    p.add_argument("--threshold", type=float, default=None, help="threshold line to draw on timelines")

    p = add("bench", "measure raw model and end-to-end throughput side by side", cmd_bench)
    p.add_argument("-c", "--config", default=None, help="config whose model and settings to use")
    p.add_argument("--frames", type=int, default=600, help="frames per source")
    p.add_argument("--min-total-frames", type=int, default=2400,
                   help="runs with few sources read longer videos so every run covers at least this many frames")
    p.add_argument("--sources", default="1,4,8", help="comma-separated parallel source counts")
    p.add_argument("--batch", type=int, default=8, help="max batch size")
    p.add_argument("--latency-seconds", type=float, default=10.0, help="duration of the paced latency run")
    p.add_argument("--soak-minutes", type=float, default=0.0, help="also run a memory soak this long")
    p.add_argument("--json", default=None, help="also write the results as JSON to this file")
    p.add_argument("--threads", type=int, default=None, help="override model.threads (onnxruntime intra-op)")
    p.add_argument("--width", type=int, default=640, help="width of the generated source videos")
    p.add_argument("--height", type=int, default=360, help="height of the generated source videos")
    p.add_argument("--unchanged-frames", type=int, default=5400,
                   help="length of the mostly-unchanged stream for the pre-gate run (0: skip that run)")
    p.add_argument("--skip-unchanged", type=float, default=None,
                   help="pre-gate setting for that run (default: the config's, else 4)")
    p.add_argument("--raw-seconds", type=float, default=3.0, help="duration of each raw model measurement")
    p.add_argument("--repeats", type=int, default=3,
                   help="end-to-end runs per source count, taking turns; the median ratio is reported")
    p.add_argument("--decoders", default="ffmpeg,opencv",
                   help="decoders compared end to end, side by side (ffmpeg: a process per source; opencv: in-process)")
    p.add_argument("--decode-seconds", type=int, default=10,
                   help="length of the H.264 clips for the decode frames/s per core comparison (0: skip)")
    p.add_argument("--soak-sources", type=int, default=2, help="sources at full rate during the soak")
    p.add_argument("--soak-window", type=int, default=50, help="filter.window.size during the soak")
    p.add_argument("--workdir", default=None, help="keep generated videos here (default: a temporary folder)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except EdgefilterError as exc:
        msg = str(exc)
        if isinstance(exc, ConfigError):
            for p in exc.problems:
                print(f"edgefilter: config error: {p}", file=sys.stderr)
        else:
            print(f"edgefilter: error: {msg}", file=sys.stderr)
        return _exit_status(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
