#!/usr/bin/env bash
# A rule against the commit before it on the 80 demo draws the findings since 60 were checked on, in one run each:
# `bash benchmarks/ab_draws.sh OUT REV` (about 20 minutes on 2 cores with the features cached; CACHE=DIR for
# another cache). Each set's table goes to OUT/SET.txt, with the default's row and REV's ("finding 36 default (REV)"),
# then the draws whose counts differ between the two (demo_draws.py --compare-rows).
set -euo pipefail
out=${1:?usage: ab_draws.sh OUT REV}
rev=${2:?usage: ab_draws.sh OUT REV}
cd "$(dirname "$0")/.."
cache=${CACHE:-benchmarks/out/corpus/cache}
mkdir -p "$out"
runs=()
run() {
  local set=$1; shift
  python benchmarks/demo_draws.py --methods default finding --base "$rev" --cache "$cache" --tune "" "$@" \
    > "$out/$set.txt" 2> "$out/$set.err"
  echo "$set done $(date +%H:%M)" >> "$out/progress"
  runs+=("$out/$set.txt")
}
run n30 --held-out 340-344,345-349 --looks night --fps 30
run n15 --held-out 360-364,365-369 --looks night --fps 15
run n25 --held-out 370-374 --looks night --fps 25
run fn15 --held-out 390-394 --looks night --fps 15
run fn25 --held-out 395-399 --looks night --fps 25
run n10 --held-out 360-364,365-369 --looks night --fps 10
run d15 --held-out 360-364 --fps 15
run d25 --held-out 370-374 --fps 25
run fd15 --held-out 390-394 --fps 15
run d5 --held-out 140-149 --fps 5
run n5 --held-out 310-319 --looks night --fps 5
python benchmarks/demo_draws.py --compare-rows "${runs[@]}"
