"""Where lapse's time goes on the product path: each stage of the worker's job, timed on its own.

    python -m bench.stages                 # the 10-min 1080p30 recording → 10 s
    python -m bench.stages --quick         # its 1-minute version

The local storage (`python -m local.moto_server`, as `make run` starts it) holds the recording; the
stages run in this process as the worker runs them, first against the storage directly, then
through bench/proxy.py's S3-like link (20 ms to the first byte, 80 MB/s per connection). Each
stage gives wall seconds and the CPU seconds it cost: this Python process (with the link, the
proxy's threads are counted here too), its ffmpeg children, the storage process. Beside them, two
references: the keyframe reads alone (no decoding), and ffmpeg decoding + encoding the same
keyframes from a local file (no reading).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from bench.product import RECORDING
from bench.proxy import throttled
from bench.range_server import S3_LIKE
from bench.render import CACHE, FFMPEG, generate
from bench.stack import free_port
from chalicelib.domain.limits import Limits
from chalicelib.domain.plan import RenderPlan, plan_timelapse
from chalicelib.media.keyframe_fetch import annexb_keyframes
from chalicelib.media.mp4index import VideoIndex
from chalicelib.media.ranges import open_range_source
from chalicelib.media.render import build_render_command, render_timelapse
from chalicelib.media.source import describe_source

BUCKET = "lapse-stages"
KEY = "videos/recording.mp4"


class Clock:
    """Wall and CPU seconds of each stage: this process, its children, the storage process."""

    def __init__(self, storage_pid: int) -> None:
        self.storage_pid = storage_pid
        self.stages: dict[str, str] = {}

    def _cpu(self) -> tuple[float, float, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        fields = Path(f"/proc/{self.storage_pid}/stat").read_text().rpartition(")")[2].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (
            time.process_time(),
            children.ru_utime + children.ru_stime,
            (int(fields[11]) + int(fields[12])) / ticks,
        )

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        cpu, started = self._cpu(), time.monotonic()
        yield
        wall, after = time.monotonic() - started, self._cpu()
        python, ffmpeg, storage = (b - a for a, b in zip(cpu, after, strict=True))
        self.stages[name] = (
            f"{wall:.2f} s (CPU: Python {python:.2f}, ffmpeg {ffmpeg:.2f}, storage {storage:.2f})"
        )


def client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@contextmanager
def storage(source: Path) -> Iterator[tuple[int, int]]:
    """The local storage on a free port holding `source`; (port, pid)."""
    port = free_port()
    log = CACHE / "stages-storage.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "local.moto_server", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        s3 = client(f"http://127.0.0.1:{port}")
        s3.create_bucket(Bucket=BUCKET)
        print(f"uploading {source.name} ...", file=sys.stderr, flush=True)
        s3.upload_file(str(source), BUCKET, KEY)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def fetch_only(url: str, index: VideoIndex, plan: RenderPlan) -> int:
    stop = threading.Event()
    reader = open_range_source(url, stop=stop.is_set)
    pieces = annexb_keyframes(reader, index, plan, lambda: None, stop=stop)
    return sum(len(piece) for piece in pieces)


def keyframes_file(url: str, index: VideoIndex, plan: RenderPlan, work: Path) -> Path:
    """The render's input (the kept keyframes as Annex B) written to a local file."""
    stream = work / "keyframes.annexb"
    stop = threading.Event()
    reader = open_range_source(url, stop=stop.is_set)
    with stream.open("wb") as out:
        for piece in annexb_keyframes(reader, index, plan, lambda: None, stop=stop):
            out.write(piece)
    return stream


def job_stages(endpoint: str, clock: Clock, target: float, work: Path) -> None:
    s3 = client(endpoint)
    with clock.stage("head"):
        s3.head_object(Bucket=BUCKET, Key=KEY)
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": KEY}, ExpiresIn=3600
    )
    with clock.stage("describe (index + ffmpeg header probe, side by side)"):
        described = describe_source(url, ffmpeg=FFMPEG)
    assert described.index is not None
    plan = plan_timelapse(described.info, target, Limits(), indexed=True)
    video, poster = work / "timelapse.mp4", work / "poster.jpg"
    with clock.stage(f"render: fetch + decode + encode + poster ({plan.frame_count} frames)"):
        render_timelapse(
            url,
            video,
            plan,
            ffmpeg=FFMPEG,
            work_dir=work,
            on_progress=lambda _: None,
            should_stop=lambda: False,
            index=described.index,
            poster_path=poster,
        )
    with clock.stage("upload timelapse"):
        s3.upload_file(str(video), BUCKET, "timelapses/t.mp4")
    with clock.stage("upload poster"):
        s3.upload_file(str(poster), BUCKET, "posters/t.jpg")
    with clock.stage("reference: the keyframe reads alone"):
        fetch_only(url, described.index, plan)
    stream = keyframes_file(url, described.index, plan, work)
    command = build_render_command("-", work / "local.mp4", plan, ffmpeg=FFMPEG)
    with (
        stream.open("rb") as feed,
        clock.stage("reference: ffmpeg alone, the same keyframes from a local file"),
    ):
        subprocess.run(command, stdin=feed, capture_output=True, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stages")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    source = generate(RECORDING, args.quick)
    target = 1.0 if args.quick else 10.0
    work = CACHE / "stages"
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, str]] = {}
    with storage(source) as (port, pid):
        for link in ("make run", "S3-like link"):
            clock = Clock(pid)
            load = Path("/proc/loadavg").read_text().split()[:3]
            if link == "make run":
                job_stages(f"http://127.0.0.1:{port}", clock, target, work)
            else:
                with throttled(("127.0.0.1", port), S3_LIKE) as proxy:
                    job_stages(proxy.url, clock, target, work)
            results[link] = {"load average": " ".join(load), **clock.stages}
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
