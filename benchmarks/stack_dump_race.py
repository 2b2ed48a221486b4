"""How often a SIGABRT stack dump crashes while threads come and go: faulthandler's own handler against
edgefilter's (`logs.enable_stack_dumps`).

`python benchmarks/stack_dump_race.py [--kills 100]`

Each kill starts a child process whose three threads start and join 20 short threads each in a loop (as
the metrics endpoint's request threads come and go; a fourth waits on an event), sends it SIGABRT 0.4 s later and records how it died.
faulthandler's handler walks the thread list inside the signal handler and can crash (SIGSEGV) on a thread
that is ending; edgefilter's dumps from the main thread with the GIL held.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import sys, threading
sys.path.insert(0, {root!r})
if sys.argv[1] == "edgefilter":
    from edgefilter.logs import enable_stack_dumps
    enable_stack_dumps()
else:
    import faulthandler
    faulthandler.enable(all_threads=True)

def waiting_for_a_frame_that_never_comes():
    threading.Event().wait()

def short_lived_threads():
    while True:
        threads = [threading.Thread(target=sum, args=(range(100),)) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

threading.Thread(target=waiting_for_a_frame_that_never_comes, daemon=True).start()
for _ in range(3):
    threading.Thread(target=short_lived_threads, daemon=True).start()
print("up", flush=True)
while not threading.Event().wait(0.2):
    pass
"""


def kill_once(handler: str) -> str:
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(root=str(ROOT)), handler], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.readline()
    time.sleep(0.4)
    proc.send_signal(signal.SIGABRT)
    _, err = proc.communicate(timeout=60)
    name = signal.Signals(-proc.returncode).name if proc.returncode < 0 else f"exit {proc.returncode}"
    return name + ("" if "most recent call first" in err else ", no stack")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=100)
    args = ap.parse_args(argv)
    counts = {h: Counter() for h in ("faulthandler", "edgefilter")}
    for _ in range(args.kills):
        for handler, seen in counts.items():  # taking turns: the same machine load for both
            seen[kill_once(handler)] += 1
    for handler, seen in counts.items():
        print(f"{handler:12s} " + ", ".join(f"{n} {how}" for how, n in seen.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
