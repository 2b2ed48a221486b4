#!/bin/bash
# Install or upgrade edgefilter as a system service. Idempotent: run it again to upgrade; an existing
# /etc/edgefilter/config.yaml is never overwritten.
#
#   sudo systemd/install.sh [--no-start] [--gpu] [PIP_SPEC]
#
# PIP_SPEC is what pip installs into the venv (default: this checkout with the [cpu] extra), e.g.
# "/path/to/edgefilter-x.y.z-py3-none-any.whl[cpu]". --gpu installs the [gpu] extra (onnxruntime-gpu)
# instead of [cpu]; add ,cuda for the CUDA runtime wheels: "/path/to/checkout[gpu,cuda]".
set -euo pipefail

PREFIX=/opt/edgefilter
CONFIG_DIR=/etc/edgefilter
USER_NAME=edgefilter
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$(dirname "$HERE")"

start=1
extra=cpu
spec=""
for arg in "$@"; do
  case "$arg" in
    --no-start) start=0 ;;
    --gpu) extra=gpu ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    -*) echo "install.sh: unknown option $arg" >&2; exit 64 ;;
    *) spec="$arg" ;;
  esac
done
# The daemon needs onnxruntime: the base install alone is for subscribers.
[ -n "$spec" ] || spec="$SRC[$extra]"

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo $0)" >&2
  exit 77
fi

say() { echo "install.sh: $*"; }

# 1. The system user, in group video so it can open /dev/video*.
if ! getent group video >/dev/null; then
  groupadd --system video
fi
install -D -m 0644 "$HERE/edgefilter.sysusers.conf" /etc/sysusers.d/edgefilter.conf
if command -v systemd-sysusers >/dev/null; then
  systemd-sysusers /etc/sysusers.d/edgefilter.conf
else
  getent group "$USER_NAME" >/dev/null || groupadd --system "$USER_NAME"
  getent passwd "$USER_NAME" >/dev/null || useradd --system --gid "$USER_NAME" --groups video \
    --home-dir /var/lib/edgefilter --no-create-home --shell /usr/sbin/nologin \
    --comment "edgefilter camera frame filter" "$USER_NAME"
fi
id -nG "$USER_NAME" | tr ' ' '\n' | grep -qx video || usermod -a -G video "$USER_NAME"
say "user $USER_NAME: $(id "$USER_NAME")"

# 2. The virtual environment (root-owned: the service only reads it).
if [ ! -x "$PREFIX/bin/python" ]; then
  python3 -m venv "$PREFIX"
fi
"$PREFIX/bin/python" -m pip install --quiet --upgrade pip
# onnxruntime and onnxruntime-gpu install the same module: on a switch between [cpu] and [gpu] drop the other.
case "$spec" in *gpu*) other=onnxruntime ;; *) other=onnxruntime-gpu ;; esac
"$PREFIX/bin/python" -m pip uninstall --quiet -y "$other" >/dev/null 2>&1 || true
"$PREFIX/bin/python" -m pip install --quiet --upgrade "$spec"
test -x "$PREFIX/bin/edgefilter" || { echo "install.sh: $PREFIX/bin/edgefilter missing after pip install" >&2; exit 1; }
# The unit's Documentation= points here.
install -D -m 0644 "$SRC/README.md" "$PREFIX/share/doc/edgefilter/README.md"
say "installed $("$PREFIX/bin/python" -m pip show edgefilter 2>/dev/null | sed -n 's/^Version: /edgefilter /p') in $PREFIX"

# 3. Configuration: root:edgefilter 0750/0640, readable by the service, never written by it.
install -d -m 0750 -o root -g "$USER_NAME" "$CONFIG_DIR"
if [ ! -e "$CONFIG_DIR/config.yaml" ]; then
  if [ -f "$SRC/config.yaml" ]; then
    # The repository's example: the demo camera, so the service runs before any camera is configured.
    install -m 0640 -o root -g "$USER_NAME" "$SRC/config.yaml" "$CONFIG_DIR/config.yaml"
  else
    umask 027
    cat > "$CONFIG_DIR/config.yaml" <<'YAML'
# edgefilter configuration: see the README's configuration reference.
sources:
  - name: cam0
    url: /dev/video0
publish:
  bind: tcp://127.0.0.1:5556
metrics:
  bind: 127.0.0.1:9108
YAML
    chown root:"$USER_NAME" "$CONFIG_DIR/config.yaml"
    chmod 0640 "$CONFIG_DIR/config.yaml"
  fi
  say "wrote $CONFIG_DIR/config.yaml: edit its sources, then: systemctl restart edgefilter"
else
  say "kept the existing $CONFIG_DIR/config.yaml"
fi

# A bad config makes the service exit 78 and stay stopped (RestartPreventExitStatus=78): say so now.
if ! "$PREFIX/bin/edgefilter" check-config "$CONFIG_DIR/config.yaml"; then
  say "$CONFIG_DIR/config.yaml has errors (above): fix them before starting the service"
  start=0
fi

# 4. The unit.
install -m 0644 "$HERE/edgefilter.service" /etc/systemd/system/edgefilter.service
if [ ! -d /run/systemd/system ]; then
  say "systemd is not running here: unit installed, not enabled"
  exit 0
fi
systemctl daemon-reload
systemctl enable edgefilter.service
if [ "$start" -eq 1 ]; then
  # restart picks up an upgraded venv; a first install just starts.
  systemctl restart edgefilter.service
  systemctl --no-pager --lines=5 status edgefilter.service || true
else
  say "enabled; start with: systemctl start edgefilter"
fi
