#!/usr/bin/env bash
# `make synth`: writes every stage's CloudFormation template (JSON) and its assets to build/infra/.
# Offline: no AWS account, no CDK CLI. Builds the ffmpeg layer first when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3

bash layers/ffmpeg/build.sh
"$PY" infra/app.py --out build/infra "$@"
