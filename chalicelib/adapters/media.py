"""ffmpeg as the worker's Renderer (services/ports.py): the media package's describe, render and
poster behind the port, so the use case and its unit tests never touch a subprocess.

The render writes the poster beside its output (`_rendered_poster`) from the frames it encodes;
`poster` hands that file over, and decodes the output for one only when the render left none."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from chalicelib.domain.plan import RenderPlan
from chalicelib.media.idle_scan import find_idle, render_skipping_idle
from chalicelib.media.join import join_segments
from chalicelib.media.mp4index import VideoIndex
from chalicelib.media.render import RenderResult, make_poster, render_timelapse
from chalicelib.media.source import describe_source
from chalicelib.services.ports import Described, ReadCount, Rendered


class FfmpegRenderer:
    def __init__(self, ffmpeg: str) -> None:
        self.ffmpeg = ffmpeg

    def describe(self, url: str) -> Described:
        found = describe_source(url, ffmpeg=self.ffmpeg)
        reads = ReadCount(found.index_reads.bytes_read, found.index_reads.requests)
        keyframes = (
            tuple(k.seconds for k in found.index.keyframes) if found.index is not None else None
        )
        return Described(found.info, found.index is not None, reads, found.index, keyframes)

    def render(
        self,
        url: str,
        output: Path,
        plan: RenderPlan,
        described: Described,
        *,
        work_dir: Path,
        on_progress: Callable[[int], None],
        should_stop: Callable[[], bool],
        deadline: float | None,
    ) -> Rendered:
        index = described.handle if isinstance(described.handle, VideoIndex) else None
        result = render_timelapse(
            url,
            output,
            plan,
            ffmpeg=self.ffmpeg,
            work_dir=work_dir,
            on_progress=on_progress,
            should_stop=should_stop,
            deadline=deadline,
            index=index,
            poster_path=_rendered_poster(output),
        )
        return _rendered(result)

    def render_skipping_idle(
        self,
        url: str,
        output: Path,
        plan: RenderPlan,
        described: Described,
        *,
        work_dir: Path,
        on_progress: Callable[[int], None],
        should_stop: Callable[[], bool],
        deadline: float | None,
    ) -> tuple[Rendered, RenderPlan]:
        index = described.handle if isinstance(described.handle, VideoIndex) else None
        result, rendered = render_skipping_idle(
            url,
            output,
            plan,
            ffmpeg=self.ffmpeg,
            work_dir=work_dir,
            on_progress=on_progress,
            should_stop=should_stop,
            deadline=deadline,
            index=index,
        )
        return _rendered(result), rendered

    def join(
        self,
        segments: list[Path],
        output: Path,
        *,
        durations: list[float],
        should_stop: Callable[[], bool],
        deadline: float | None,
    ) -> Rendered:
        result = join_segments(
            segments,
            output,
            durations=durations,
            ffmpeg=self.ffmpeg,
            should_stop=should_stop,
            deadline=deadline,
        )
        return _rendered(result)

    def find_idle(
        self,
        url: str,
        plan: RenderPlan,
        described: Described,
        *,
        work_dir: Path,
        should_stop: Callable[[], bool],
        deadline: float | None,
    ) -> tuple[tuple[float, float], ...]:
        index = described.handle if isinstance(described.handle, VideoIndex) else None
        return find_idle(
            url,
            plan,
            ffmpeg=self.ffmpeg,
            work_dir=work_dir,
            should_stop=should_stop,
            deadline=deadline,
            index=index,
        )

    def poster(self, video: Path, poster: Path, *, at_seconds: float) -> None:
        rendered = _rendered_poster(video)
        if rendered.exists():
            rendered.replace(poster)
            return
        make_poster(video, poster, ffmpeg=self.ffmpeg, at_seconds=at_seconds)


def _rendered(result: RenderResult) -> Rendered:
    reads = None
    if result.source_bytes_read is not None and result.source_requests is not None:
        reads = ReadCount(result.source_bytes_read, result.source_requests)
    return Rendered(
        width=result.width,
        height=result.height,
        fps=result.fps,
        duration_seconds=result.duration_seconds,
        frame_count=result.frame_count,
        size_bytes=result.size_bytes,
        reads=reads,
    )


def _rendered_poster(video: Path) -> Path:
    return video.with_name(f"{video.stem}-poster.jpg")
