"""The lapse CDK app: `python infra/app.py` synthesizes every stage's template into build/infra/.

Offline: no AWS account and no CDK CLI are needed (jsii runs the CDK on Node). Packaging the
Chalice app downloads the Lambda wheels from PyPI once; Chalice caches them under the work folder.
Deploy the result with `make deploy STAGE=dev` (infra/deploy.sh).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

# Node 20 (this machine's) is past jsii's end of support but works; say so once, in the README,
# instead of a banner on every synth. Set before aws_cdk starts its Node process.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stacks.lapse_stack import LapseStack
from stacks.stage import load_stage

REPO = Path(__file__).resolve().parent.parent
# What Lambda gets: the ffmpeg binary comes from the layer, not from imageio-ffmpeg's wheel
# (172 MB, and the function plus its layers must stay under 250 MB unzipped).
EXCLUDED_REQUIREMENTS = ("imageio-ffmpeg", "imageio_ffmpeg")
# Stack variants synthesized by default: (Chalice stage, storage).
VARIANTS = (("dev", "s3"), ("prod", "s3"), ("dev", "r2"))


def stage_source(source: Path, dest: Path) -> Path:
    """Copy what Chalice deploys (app.py, chalicelib/, its config, runtime requirements) to dest.

    dest/.chalice/deployments (Chalice's cache of packaged dependencies) survives between runs.
    """
    (dest / ".chalice").mkdir(parents=True, exist_ok=True)
    shutil.rmtree(dest / "chalicelib", ignore_errors=True)
    shutil.copytree(
        source / "chalicelib", dest / "chalicelib", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy2(source / "app.py", dest / "app.py")
    shutil.copy2(source / ".chalice" / "config.json", dest / ".chalice" / "config.json")
    lines = (source / "requirements.txt").read_text().splitlines()
    kept = [line for line in lines if not line.strip().lower().startswith(EXCLUDED_REQUIREMENTS)]
    (dest / "requirements.txt").write_text("\n".join(kept) + "\n")
    return dest


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "build" / "infra")
    parser.add_argument("--work", type=Path, default=REPO / "build" / "chalice")
    parser.add_argument("--source", type=Path, default=REPO, help="folder holding app.py")
    parser.add_argument("--layer-zip", type=Path, default=REPO / "build" / "layers" / "ffmpeg.zip")
    parser.add_argument(
        "--variant",
        action="append",
        help="STAGE or STAGE:r2 (repeatable); default: dev, prod, dev:r2",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    variants = (
        [(v.split(":")[0], v.split(":")[1] if ":" in v else "s3") for v in args.variant]
        if args.variant
        else list(VARIANTS)
    )
    if not args.layer_zip.is_file():
        sys.exit(f"{args.layer_zip} is missing: run `make layer` first")
    out, work = args.out.resolve(), args.work.resolve()
    source_dir = stage_source(args.source.resolve(), work / "app")
    # Chalice's construct writes its packages under ./chalice.out: keep them in the work folder.
    os.chdir(work)
    shutil.rmtree(work / "chalice.out", ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    app = cdk.App(outdir=str(out), analytics_reporting=False)
    for stage_name, storage in variants:
        stage = load_stage(source_dir, stage_name, storage)  # type: ignore[arg-type]
        LapseStack(app, stage, source_dir=source_dir, layer_zip=args.layer_zip.resolve())
    app.synth()
    for template in sorted(out.glob("*.template.json")):
        print(template)


if __name__ == "__main__":
    main()
