#!/usr/bin/env bash
# The GPU measurements of benchmarks/RESULTS.md, on a machine with an NVIDIA GPU and onnxruntime-gpu:
#   bash benchmarks/gpu_bench.sh OUTDIR
# 0. benchmarks/gpu_diag.py: first one 1080p source at batch 32 with every model call timed (fp32 twice, fp16),
#    then the daemon on one source with the CPU model, CUDA as shipped and CUDA under
#    other session options, and the pipeline without a model (CUDA ran slower end to end than the CPU).
# 1. benchmarks/gpu_check.py: `providers: auto` chooses CUDA; CPU and CUDA (fp32, fp16) embeddings of the
#    same frames; the frames the default filter keeps with each.
# 2. `edgefilter bench` with CUDA fp32, then fp16: raw model and end to end at 1 and 32 sources of
#    1920x1080 (every frame embedded, batch 32), and 32 sources paced at 30 fps with the default filter
#    (capture to decision latency). Decoder: ffmpeg and OpenCV where an ffmpeg is found, else OpenCV.
# Needs: onnxruntime-gpu, usearch (<2.26.2), pyzmq, OpenCV, PyYAML and prometheus-client importable by $PYTHON,
# and models/efficientnet_lite0_regions.onnx and its _fp16 variant. About 9 minutes at most (the time limits below).
set -uo pipefail
out=${1:?usage: gpu_bench.sh OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc; "$py" -V;
  "$py" -c 'import onnxruntime, cv2, numpy; print(onnxruntime.__version__, cv2.__version__, numpy.__version__)'; } \
  2>&1 | tee "$out/machine.txt"
decoders=opencv
if command -v ffmpeg >/dev/null 2>&1 || "$py" -c 'import imageio_ffmpeg' 2>/dev/null; then decoders=ffmpeg,opencv; fi
# The example config with the model forced onto CUDA (a failure to load CUDA is then an error, not the CPU).
sed 's/^\(  providers:\) auto.*/\1 cuda/' config.yaml > gpu-fp32.yaml
sed 's/^\(  providers:\) auto.*/\1 cuda\n  fp16: true/' config.yaml > gpu-fp16.yaml
grep -q 'providers: cuda' gpu-fp32.yaml && grep -q 'fp16: true' gpu-fp16.yaml || { echo "config edit failed"; exit 2; }
timeout 180 "$py" benchmarks/gpu_diag.py --json "$out/diag.json" 2>&1 | tee "$out/diag.log"
timeout 80 "$py" benchmarks/gpu_check.py --json "$out/check.json" 2>&1 | tee "$out/check.log"
for v in fp32 fp16; do  # the first run also writes the clips (1080p: about 25 ms a frame)
  [ $v = fp32 ] && limit=150 || limit=120
  timeout $limit "$py" -m edgefilter bench -c gpu-$v.yaml --sources 1,32 --batch 32 --repeats 1 \
    --decoders $decoders --decode-seconds 0 --width 1920 --height 1080 --frames 150 --min-total-frames 600 \
    --unchanged-frames 0 --latency-seconds 8 --fleet-sources 32 --raw-seconds 2 --workdir /tmp/edgefilter-gpu-bench \
    --json "$out/bench-$v.json" 2>&1 | tee "$out/bench-$v.log"
done
