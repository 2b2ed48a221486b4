#!/usr/bin/env python3
"""A stand-in for ffmpeg that misbehaves on request (tests point $EDGEFILTER_FFMPEG at it).

An input named ``*.stub.json`` describes what to do: announce ``size`` [w, h] the way ffmpeg does, send
``frames`` frames (every byte of frame i is i % 256), then ``then``: ``end`` (exit 0), ``abort`` (SIGABRT,
as OpenCV's heap corruption does), ``hang``, ``partial`` (a torn frame), ``exit1``, or ``allocate`` (grab
``alloc_mb`` MiB, to meet the memory limit). ``header: false`` hangs before announcing anything;
``hwaccel_fails: true`` fails like ffmpeg without a GPU when ``-hwaccel`` is given. Any other input is
handed to the real ffmpeg, so a daemon can run good and bad sources side by side.
"""
import json
import os
import shutil
import sys
import time

args = sys.argv[1:]
url = args[args.index("-i") + 1]
path = url.removeprefix("tcp://stub")  # tcp://stub/dir/x.stub.json: the same, as a live stream
if not path.endswith(".stub.json"):
    real = os.environ.get("STUB_REAL_FFMPEG") or shutil.which("ffmpeg")
    if real is None:  # no system ffmpeg: the one the imageio-ffmpeg wheel ships, as the daemon would
        import imageio_ffmpeg
        real = imageio_ffmpeg.get_ffmpeg_exe()
    os.execv(real, [real] + args)
with open(path) as f:
    spec = json.load(f)
err, out = sys.stderr, sys.stdout.buffer
if "-hwaccel" in args and spec.get("hwaccel_fails"):
    print("[AVHWDeviceContext @ 0x1] [error] Cannot load libcuda.so.1", file=err)
    print("[error] Device setup failed for decoder on input stream #0:0 : Operation not permitted", file=err)
    sys.exit(1)
if not spec.get("header", True):
    time.sleep(3600)
w, h = spec["size"]
print("[info] Output #0, rawvideo, to 'pipe:1':", file=err)
print(f"[info]   Stream #0:0: Video: rawvideo (BGR[24] / 0x18524742), bgr24, {w}x{h}, 25 fps, 25 tbn", file=err)
err.flush()
for i in range(spec.get("frames", 0)):
    out.write(bytes([i % 256]) * (w * h * 3))
    out.flush()
then = spec.get("then", "end")
if then == "abort":
    os.abort()
elif then == "hang":
    time.sleep(3600)
elif then == "partial":
    out.write(b"\x07" * 100)
elif then == "exit1":
    print("[h264 @ 0x2] [error] stub decoder gave up on rtsp://admin:hunter2@cam/1", file=err)
    sys.exit(1)
elif then == "allocate":
    try:
        block = bytearray(spec["alloc_mb"] << 20)
    except MemoryError:
        print("[fatal] out of memory", file=err)
        sys.exit(137)
