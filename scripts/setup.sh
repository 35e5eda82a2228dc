#!/usr/bin/env bash
# Make .venv and install abaw into it, in the order that keeps the pinned torch:
# the torch trio first, then the package (and with --dev its test tools and a headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    *) echo "usage: scripts/setup.sh [--dev]" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip=(.venv/bin/python -m pip install --disable-pip-version-check -q)
"${pip[@]}" --upgrade pip
"${pip[@]}" torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0
if [ "$dev" = 1 ]; then
  "${pip[@]}" -e ".[dev]"
  # The leaderboard page is tested in a real headless Chromium; without root or apt those tests skip.
  if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) \
      || echo "setup: could not install chromium; the browser tests will skip" >&2
  fi
else
  "${pip[@]}" -e .
fi
echo "setup: abaw installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
