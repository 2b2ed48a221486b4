"""`python benchmarks/tried/nice-filter-thread-ab.py [ROUNDS] [opencv|ffmpeg]` (run from the checkout, venv active).

A/B, side by side in one run: the filter (and publisher) threads niced like the capture threads, or not.
Each e2e run (every frame embedded, 1 source) between two raw measurements of the same session; A and B take turns."""
import dataclasses, statistics, sys, tempfile
from pathlib import Path
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from edgefilter import bench, daemon as D, publisher as P
from edgefilter.capture import lower_priority
from edgefilter.model import Embedder
from edgefilter.preprocess import preprocess

NICE = {"on": False}


def niced(fn):
    """``fn`` as a thread's body that first lowers its thread's priority when NICE is on."""
    def body(self, *a, **k):
        if NICE["on"]:
            lower_priority()
        return fn(self, *a, **k)
    return body


D.Daemon._filter_loop = niced(D.Daemon._filter_loop)
P.Publisher._run = niced(P.Publisher._run)

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
decoder = sys.argv[2] if len(sys.argv) > 2 else "opencv"
s = bench.BenchSettings(config=str(ROOT / "config.yaml"), sources=(1,), latency_seconds=0, unchanged_frames=0)
base = bench._base_config(s)
timed = bench.TimedEmbedder(Embedder.from_config(base))
work = Path(tempfile.mkdtemp(prefix="nice-ab-"))
video = bench.demo_video(work, 600, s.width, s.height)
tensors = [preprocess(im, timed.input_size, timed.colour) for im in bench.decoded_frames(video, 64)]
no_gate = dataclasses.replace(base.gates, skip_unchanged=0.0)
cfg = dataclasses.replace(base, sources=bench._sources(video, 1, decoder=decoder), gates=no_gate)
ratios = {False: [], True: []}
raw = bench.raw_fps(timed, tensors, s.batch, 2.0)["fps"]
for r in range(rounds):
    for on in ((False, True) if r % 2 == 0 else (True, False)):
        NICE["on"] = on
        run = bench.run_pipeline("e2e", cfg, timed, record=False)
        after = bench.raw_fps(timed, tensors, s.batch, 2.0)["fps"]
        ratio = run.fps / ((raw + after) / 2)
        ratios[on].append(ratio)
        print(f"round {r} nice={on}: e2e {run.fps:.1f} raw {raw:.1f}/{after:.1f} ratio {ratio:.3f}", flush=True)
        raw = after
for on in (False, True):
    print(f"nice={on}: median {statistics.median(ratios[on]):.3f}, all {[round(x, 3) for x in ratios[on]]}")
