"""`make bench`: the product path, timed from the end of the upload to `complete`, beside the usual
pipeline, in one run.

    python -m bench.product            # the issue's jobs: 10-min 1080p30 (1.1 GB) → 10 s,
                                       # 1-hour 1080p30 (6.8 GB) → 30 s
    python -m bench.product --quick    # the same shapes, 1 and 6 minutes long (make bench QUICK=1)

For each job, twice: through the local stack as `make run` starts it (python -m local.stack), and
with its storage behind a link like S3 seen from Lambda (bench/proxy.py as LAPSE_S3_ENDPOINT_URL:
20 ms before each request's first byte, 80 MB/s per connection, both ways; the presigned URLs the
worker reads go through it too). Each time: create the timelapse over the HTTP API, upload the file
through its presigned URL(s) as `lapse submit` does (multipart above 100 MiB), then poll
GET /timelapses/{id}; seconds = completedAt − the moment the upload finished. Storage's own log
gives the bytes it sent of the original and the requests for it; /proc gives the worker's peak
memory (its Python, and everything it runs together: ffmpeg).

The usual pipeline: download the original over the same link (boto3's download_file, 10
connections), decode every frame, keep one per interval (select), scale, x264 medium — ratio =
its time ÷ lapse's on the same link. Quality: SSIM of lapse's timelapse (downloaded after the run)
against the usual pipeline's, frame by frame (ffmpeg's ssim filter, "All"), both read as the
BT.709 limited-range pictures they are (the usual output is untagged; left so, ffmpeg converts one
of the two before comparing and the SSIM reads 0.974 instead of 0.995).

Sources are generated once and cached under build/bench/ (bench/render.py: a one-minute x264
segment with a keyframe every 2 s, looped with `-c copy`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import requests

from bench.proxy import throttled
from bench.range_server import LOOPBACK, S3_LIKE, Network
from bench.render import CACHE, FFMPEG, Input, generate, usual_pipeline
from bench.stack import MemorySampler, RunningStack, free_port, running_stack, storage_reads
from chalicelib.adapters.auth import make_local_token
from chalicelib.domain.limits import Limits
from chalicelib.domain.plan import plan_timelapse
from chalicelib.media.probe import probe
from lapse_cli.client import TERMINAL, ApiClient, Progress, upload

MiB = 1024 * 1024
JOB_TIMEOUT_SECONDS = 3600.0


@dataclass(frozen=True)
class Job:
    name: str
    source: Input
    target_seconds: float
    quick_target_seconds: float

    def target(self, quick: bool) -> float:
        return self.quick_target_seconds if quick else self.target_seconds

    def describe(self, quick: bool) -> str:
        minutes = self.source.quick_minutes if quick else self.source.minutes
        length = "1-hour" if minutes == 60 else f"{minutes:g}-min"
        return f"{length} {self.source.description.split(' ', 1)[1]}"


RECORDING = Input("rec-10min", "10-min 1080p30, keyframe every 2 s", "1920x1080", 10, 1, 60, "15M")
JOBS = [
    Job("10min", RECORDING, 10, 1),
    Job(
        "1h",
        Input("rec-1h", "1-hour 1080p30, keyframe every 2 s", "1920x1080", 60, 6, 60, "15M"),
        30,
        3,
    ),
]
LINKS: dict[str, Network] = {"make run": LOOPBACK, "S3-like link": S3_LIKE}


@dataclass
class Row:
    job: str
    link: str
    path: str  # "lapse" or "usual"
    description: str
    file_bytes: int
    seconds: float
    bytes_read: int
    requests: int
    python_rss: int = 0
    ffmpeg_rss: int = 0
    status: str = "complete"
    download_seconds: float = 0.0
    ratio: float = 0.0
    ssim_vs_usual: float = 0.0  # lapse rows: its timelapse against the usual pipeline's


# --- lapse, through the stack ---------------------------------------------------------------------


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def run_lapse(
    stack: RunningStack, job: Job, quick: bool, link: str, work: Path
) -> tuple[Row, dict[str, Any]]:
    """One upload → complete; returns the row and the record (its original is still stored).
    The timelapse is downloaded (untimed) to `lapse_output(work, job, link)`."""
    source = job.source.path(quick)
    size = source.stat().st_size
    client = ApiClient(stack.config.api_url, make_local_token("bench", "local-dev-secret"), 120)
    created = client.request(
        "POST",
        "/timelapses",
        {
            "projectId": "bench",
            "contentType": "video/mp4",
            "sizeBytes": size,
            "filename": source.name,
            "targetSeconds": job.target(quick),
        },
    )
    record = created["timelapse"]
    log_offset = stack.storage_log.stat().st_size
    print(f"{job.name} over {link}: uploading {size / 1e6:.0f} MB ...", file=sys.stderr)
    upload(client, created, source, Progress(size, label=f"  {job.name} upload"))
    uploaded_at = time.time()
    with MemorySampler(stack.worker_pid()) as memory:
        done = wait_for_end(client, record["id"])
    finished = parse_time(done["completedAt"]) if done.get("completedAt") else time.time()
    reads = storage_reads(
        stack.storage_log, log_offset, stack.config.bucket, record["originalVideoKey"]
    )
    status = done["status"] if done["status"] == "complete" else f"{done['status']}: {done}"
    row = Row(
        job=job.name,
        link=link,
        path="lapse",
        description=job.describe(quick),
        file_bytes=size,
        seconds=finished - uploaded_at,
        bytes_read=reads.bytes_sent,
        requests=reads.requests,
        python_rss=memory.peak_self,
        ffmpeg_rss=memory.peak_children,
        status=status,
    )
    print(f"  {job.name} over {link}: {row.seconds:.1f} s, {status[:200]}", file=sys.stderr)
    if done.get("urls", {}).get("video"):
        answer = requests.get(done["urls"]["video"], timeout=120)
        answer.raise_for_status()
        lapse_output(work, job.name, link).write_bytes(answer.content)
    return row, dict(record)


def ssim(a: Path, b: Path) -> float:
    """SSIM ("All") of two videos frame by frame, both read as BT.709 limited range."""
    same = "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709"
    completed = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-i", str(a), "-i", str(b),
         "-lavfi", f"[0]{same}[a];[1]{same}[b];[a][b]ssim", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"SSIM .*All:(?P<all>[\d.]+)", completed.stderr)
    return float(found["all"]) if found else float("nan")


def lapse_output(work: Path, job: str, link: str) -> Path:
    return work / f"{job}-{link.replace(' ', '-')}-lapse.mp4"


def wait_for_end(client: ApiClient, timelapse_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while True:
        record = client.get(timelapse_id)
        if record["status"] in TERMINAL or time.monotonic() > deadline:
            return record
        time.sleep(0.2)


# --- the usual pipeline ---------------------------------------------------------------------------


def download_original(
    stack: RunningStack, endpoint: str, key: str, into: Path
) -> tuple[float, int, int]:
    """The usual first step, timed: the whole original over the link. (seconds, bytes, requests)"""
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=stack.config.region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    log_offset = stack.storage_log.stat().st_size
    started = time.monotonic()
    s3.download_file(stack.config.bucket, key, str(into))
    seconds = time.monotonic() - started
    time.sleep(0.5)  # the storage log line of each GET is written when its answer ends
    reads = storage_reads(stack.storage_log, log_offset, stack.config.bucket, key)
    return seconds, reads.bytes_sent, reads.requests


def decode_and_encode(source: Path, target: float, output: Path) -> tuple[float, int]:
    """The usual rest: decode every frame, select, scale, x264 medium (bench/render.py)."""
    plan = plan_timelapse(probe(str(source), ffmpeg=FFMPEG), target, Limits())
    seconds, rss_kib = usual_pipeline(source, plan, output)
    return seconds, rss_kib * 1024


# --- one run --------------------------------------------------------------------------------------


def bench_link(link: str, jobs: list[Job], quick: bool, work: Path) -> list[Row]:
    """Every job through one stack on one link; the usual pipeline's download on the same link."""
    network = LINKS[link]
    log = work / f"stack-{link.replace(' ', '-')}.log"
    rows: list[Row] = []

    def run(stack: RunningStack, endpoint: str) -> None:
        for job in jobs:
            row, record = run_lapse(stack, job, quick, link, work)
            copy = work / f"{job.name}-downloaded.mp4"
            seconds, sent, requests_made = download_original(
                stack, endpoint, record["originalVideoKey"], copy
            )
            rows.append(row)
            rows.append(
                Row(
                    job=job.name,
                    link=link,
                    path="usual",
                    description=job.describe(quick),
                    file_bytes=row.file_bytes,
                    seconds=seconds,
                    bytes_read=sent,
                    requests=requests_made,
                    download_seconds=seconds,
                )
            )
            client = ApiClient(stack.config.api_url, make_local_token("bench", "local-dev-secret"))
            client.request("DELETE", f"/timelapses/{record['id']}")  # frees storage

    if network == LOOPBACK:
        with running_stack(log) as stack:
            run(stack, stack.config.endpoint)
        return rows
    moto_port = free_port()
    with (
        throttled(("127.0.0.1", moto_port), network) as proxy,
        running_stack(log, moto_port, LAPSE_S3_ENDPOINT_URL=proxy.url) as stack,
    ):
        run(stack, proxy.url)
        traffic = proxy.traffic
        print(
            f"the link carried {traffic.requests} requests, {traffic.bytes_down / 1e6:.0f} MB "
            f"from storage, {traffic.bytes_up / 1e6:.0f} MB to it",
            file=sys.stderr,
        )
    return rows


def add_usual_compute(rows: list[Row], jobs: list[Job], quick: bool, work: Path) -> None:
    """Decode + encode once per job (same bytes on every link), after the stacks are down."""
    for job in jobs:
        copy = work / f"{job.name}-downloaded.mp4"
        print(f"{job.name}: the usual pipeline's decode + encode ...", file=sys.stderr)
        usual_out = work / f"{job.name}-usual.mp4"
        seconds, rss = decode_and_encode(copy, job.target(quick), usual_out)
        copy.unlink()
        for row in rows:
            if row.job == job.name and row.path == "usual":
                row.seconds = row.download_seconds + seconds
                row.ffmpeg_rss = rss
            lapsed = lapse_output(work, row.job, row.link)
            if row.job == job.name and row.path == "lapse" and lapsed.exists():
                row.ssim_vs_usual = ssim(lapsed, usual_out)
    for row in rows:
        usual = next(r for r in rows if (r.job, r.link, r.path) == (row.job, row.link, "usual"))
        row.ratio = usual.seconds / row.seconds if row.seconds else 0.0


# --- the table ------------------------------------------------------------------------------------


def table(rows: list[Row], jobs: list[Job], quick: bool) -> str:
    lines = [
        "| job | path | upload done → complete | ratio | read from storage | requests "
        "| peak memory: worker Python + ffmpeg | SSIM vs usual |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        job = next(j for j in jobs if j.name == row.job)
        what = (
            f"{row.description} ({row.file_bytes / 1e9:.2f} GB) → {job.target(quick):g} s"
            if row.path == "lapse" and row.link == "make run"
            else ""
        )
        path = f"lapse, {row.link}" if row.path == "lapse" else f"usual pipeline, {row.link}"
        seconds = f"{row.seconds:.1f} s"
        if row.path == "usual":
            seconds += f" ({row.download_seconds:.1f} s download)"
        if row.status != "complete":
            seconds = f"**{row.status[:80]}**"
        ratio = f"**{row.ratio:.1f}×**" if row.path == "lapse" else "1×"
        share = 100 * row.bytes_read / row.file_bytes
        memory = (
            f"{row.python_rss / MiB:.0f} + {row.ffmpeg_rss / MiB:.0f} MiB"
            if row.path == "lapse"
            else f"ffmpeg {row.ffmpeg_rss / MiB:.0f} MiB"
        )
        quality = f"{row.ssim_vs_usual:.4f}" if row.path == "lapse" else ""
        lines.append(
            f"| {what} | {path} | {seconds} | {ratio} "
            f"| {row.bytes_read / 1e6:.0f} MB = {share:.1f} % | {row.requests} | {memory} "
            f"| {quality} |"
        )
    return "\n".join(lines) + "\n" + scaling(rows, jobs)


def scaling(rows: list[Row], jobs: list[Job]) -> str:
    if len(jobs) < 2:
        return ""
    short, long = jobs[0].name, jobs[1].name
    notes = []
    for link in LINKS:
        times = {r.job: r.seconds for r in rows if r.path == "lapse" and r.link == link}
        if short in times and long in times:
            notes.append(f"{times[long] / times[short]:.2f}× over {link}")
    return f"\n{long} job ÷ {short} job (lapse): " + ", ".join(notes) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.product")
    parser.add_argument("--quick", action="store_true", help="1- and 6-minute sources")
    parser.add_argument("--only", action="append", choices=[job.name for job in JOBS])
    parser.add_argument("--link", action="append", choices=list(LINKS))
    args = parser.parse_args(argv)
    quick = bool(args.quick or os.environ.get("QUICK"))
    jobs = [job for job in JOBS if not args.only or job.name in args.only]
    for job in jobs:
        generate(job.source, quick)
    work = CACHE / "product"
    work.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    for link in args.link or list(LINKS):
        rows += bench_link(link, jobs, quick, work)
    add_usual_compute(rows, jobs, quick, work)
    rows.sort(key=lambda r: ([j.name for j in jobs].index(r.job), r.link != "make run", r.path))
    result = CACHE / f"product{'-quick' if quick else ''}.json"
    result.write_text(json.dumps([asdict(row) for row in rows], indent=1))
    print(f"\n{os.cpu_count()} CPUs, ffmpeg {FFMPEG}; results in {result}\n")
    print(table(rows, jobs, quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
