"""The ``edgefilter`` command line.

Every user mistake ends as one line ``edgefilter: error: ...`` (every problem for a
bad config) and a documented exit status, never a traceback:
0 ok, 1 runtime failure, 64 usage, 65 bad data (message, state file), 66 missing input,
69 unavailable (model/CUDA/bind, or the install extra a command needs), 78 bad configuration
(systemd's unit does not restart on 64 or 78). The README's exit-status table is checked against these.
"""
from __future__ import annotations

import os

# One BLAS thread: drift statistics share the cores with the model's own thread pool; two OpenBLAS
# threads competing with it made an update 4x slower on 2 cores. Must be set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import logging
import sys
from typing import Any, NoReturn, Sequence

from . import __version__
from .errors import (EXIT_CONFIG, EXIT_DATAERR, EXIT_ERROR, EXIT_NOINPUT, EXIT_UNAVAILABLE, EXIT_USAGE, ConfigError,
                     EdgefilterError, MessageError, ModelError, PublishError, ReferenceError_, SourceError,
                     StateError)

log = logging.getLogger("edgefilter")


def _setup_logging(level: str, fmt: str = "text") -> None:
    from .logs import setup_logging
    setup_logging(level, fmt)


# The base install is for subscribers; the extras bring these for the other commands.
_EXTRA_MODULES = {"onnxruntime", "usearch", "prometheus_client", "cv2"}


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
    _setup_logging(args.log_level or cfg.log.level, cfg.log.format)
    from .logs import enable_stack_dumps
    enable_stack_dumps()  # the watchdog's SIGABRT then shows every thread's Python stack in the journal
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


def cmd_bridge(args: argparse.Namespace) -> int:
    try:
        from .bridge.bridge import cli_bridge
    except ImportError as exc:  # paho-mqtt and boto3 come with the `bridge` extra only
        raise EdgefilterError(f"the bridge needs the `bridge` extra (pip install 'edgefilter[bridge]'): {exc}") \
            from None
    return cli_bridge(args.config, args.log_level, _setup_logging)


def cmd_search(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level or "warning")
    from .search import cli_search
    return cli_search(args.dir, args.image, args.label, args.k, args.html, args.config, text=args.text,
                      clip_card=args.clip_card)


def cmd_bench(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level or "warning")
    from .bench import cli_bench
    return cli_bench(args)


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a bad command line; edgefilter's documented status for that is 64 (EX_USAGE)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def version_text() -> str:
    """The version and the default model's id (from its card: cheap, no onnxruntime)."""
    import json

    from .config import DEFAULT_MODEL, Config, resolve_path
    card = resolve_path(Config(), DEFAULT_MODEL).with_suffix(".json")
    try:
        model = json.loads(card.read_text(encoding="utf-8"))["id"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        model = f"unknown ({card}: {exc})"
    return f"edgefilter {__version__}\ndefault model {model}"


class _VersionAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kw: Any):
        super().__init__(option_strings, dest, nargs=0, help="print the version and the default model's id")

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(version_text())
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgefilter", description="Keep the camera frames that show something "
                     "new; publish them and drift statistics over ZeroMQ.")
    parser.add_argument("--version", action=_VersionAction)
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

    p = add("bridge", "forward kept frames and drift from daemons to MQTT and S3-compatible storage", cmd_bridge)
    p.add_argument("-c", "--config", default="bridge.yaml", help="bridge config file (default: bridge.yaml)")
    p = add("search", "find kept frames again in a folder written by `subscribe --out`: JSON lines, best first",
            cmd_search)
    p.add_argument("dir", help="folder written by `edgefilter subscribe --out`")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--image", help="nearest frames to this photo (needs publish.embeddings: true)")
    query.add_argument("--label", help="frames with this label or group word (car, dog, vehicle...)")
    query.add_argument("--text", help="frames nearest to this sentence (needs a CLIP pair: --clip-card or "
                                      "rules.clip_card in -c CONFIG)")
    p.add_argument("-k", type=int, default=10, help="how many frames (default 10)")
    p.add_argument("--html", default=None, help="also write a contact sheet to this HTML file")
    p.add_argument("-c", "--config", default=None, help="the daemon's config, for its model (--image) and "
                                                        "rules.clip_card (--text)")
    p.add_argument("--clip-card", default=None, help="a CLIP pair's card for --text")

    p = add("bench", "measure raw model and end-to-end throughput side by side", cmd_bench)
    p.add_argument("-c", "--config", default=None, help="config whose model and settings to use")
    p.add_argument("--frames", type=int, default=600, help="frames per source")
    p.add_argument("--min-total-frames", type=int, default=2400,
                   help="runs with few sources read longer videos so every run covers at least this many frames")
    p.add_argument("--sources", default="1,4,8", help="comma-separated parallel source counts")
    p.add_argument("--batch", type=int, default=8, help="max batch size")
    p.add_argument("--latency-seconds", type=float, default=10.0, help="duration of the paced latency run")
    p.add_argument("--fleet-sources", type=int, default=0,
                   help="also run this many sources paced at 30 fps for --latency-seconds, filter as configured, "
                        "and report capture-to-decision latency (0: skip)")
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
                   help="decoders compared end to end, side by side (ffmpeg: a process per source; opencv: in-process); "
                        "the paced runs (latency, fleet, unchanged scene) use the first")
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
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in _EXTRA_MODULES:
            raise
        extra = "'edgefilter[report]'" if args.command == "report" else \
            "'edgefilter[cpu]' (or 'edgefilter[gpu]' on a machine with an NVIDIA GPU)"
        print(f"edgefilter: error: `edgefilter {args.command}` needs the module {exc.name}, which this "
              f"installation lacks: pip install {extra}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
