#!/usr/bin/env bash
# Builds build/layers/ffmpeg.zip: the Lambda layer that puts imageio-ffmpeg's static ffmpeg at /opt/bin/ffmpeg.
# Called by `make layer` (and by infra/synth.sh when the zip is missing). Skips the work when the zip is
# newer than both the binary and this script.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
OUT="${LAPSE_LAYER_ZIP:-build/layers/ffmpeg.zip}"

EXE="$("$PY" -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')"
if [ -f "$OUT" ] && [ "$OUT" -nt "$EXE" ] && [ "$OUT" -nt "$0" ]; then
  echo "layer up to date: $OUT"
  exit 0
fi

mkdir -p "$(dirname "$OUT")"
"$PY" - "$EXE" "$OUT" <<'PYEOF'
"""Zip the binary as bin/ffmpeg (mode 0755) plus its build notes; fixed timestamps for a stable hash."""

import subprocess
import sys
import zipfile
from pathlib import Path

exe, out = Path(sys.argv[1]), Path(sys.argv[2])
version = subprocess.run([str(exe), "-version"], capture_output=True, text=True, check=True).stdout
readme = exe.parent / "README.md"
notes = (
    f"ffmpeg from imageio-ffmpeg ({exe.name}); GPL build (see 'configuration' below).\n"
    "Source and build scripts: see imageio-ffmpeg's binaries README below.\n\n"
    f"{readme.read_text() if readme.exists() else ''}\n\n$ ffmpeg -version\n{version}"
)
stamp = (2020, 1, 1, 0, 0, 0)
tmp = out.with_suffix(".zip.tmp")
with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
    info = zipfile.ZipInfo("bin/ffmpeg", date_time=stamp)
    info.external_attr = (0o100755 << 16)
    info.compress_type = zipfile.ZIP_DEFLATED
    with exe.open("rb") as src, zf.open(info, "w") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    note = zipfile.ZipInfo("share/ffmpeg/BUILD-NOTES.txt", date_time=stamp)
    note.external_attr = (0o100644 << 16)
    zf.writestr(note, notes, compress_type=zipfile.ZIP_DEFLATED)
tmp.replace(out)
unzipped = sum(i.file_size for i in zipfile.ZipFile(out).infolist())
print(f"{out}: {out.stat().st_size / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped")
print(version.splitlines()[0])
PYEOF
