"""The options' filters over the kept frames, after the picture chain (`picture.py`), shared by
every strategy: ``deflicker`` evens out brightness over neighbouring kept frames; ``timestamp``
stamps each frame with the source time it shows.

The source time comes from the plan, not from the frames: "ranges" pipes pictures
without their timestamps, so every strategy numbers frames alike and ``setpts`` turns frame
``N`` into the start of its sampling window (``RenderPlan.source_time_expression``, dropped idle
ranges included); ``drawtext`` formats that with ``gmtime``: the recording's wall clock when the
file says when it began, else the time elapsed since its start.
"""

from __future__ import annotations

from pathlib import Path

from chalicelib.domain.plan import RenderPlan

FONT = Path(__file__).resolve().parent.parent / "fonts" / "DejaVuSansMono-Bold.ttf"
# Five kept frames' mean brightness ("pm": power mean) sets each one's level.
DEFLICKER = "deflicker=size=5:mode=pm"
# Text about 1/20 of the short side high: ~54 px on 1080p, still ~14 px on a phone's 280 px.
_TEXT_PER_SHORT_SIDE = 20
_WALL_CLOCK = r"%Y-%m-%d %H\\\:%M\\\:%S"
_ELAPSED = r"%H\\\:%M\\\:%S"


def finishing_filters(plan: RenderPlan) -> list[str]:
    filters: list[str] = []
    if plan.options.deflicker:
        filters.append(DEFLICKER)
    if plan.options.timestamp:
        filters += [f"setpts='({plan.source_time_expression})/TB'", timestamp_filter(plan)]
    return filters


def timestamp_filter(plan: RenderPlan) -> str:
    """White text on a translucent box in the bottom-left corner."""
    short_side = min(plan.output_width, plan.output_height)
    size = max(12, short_side // _TEXT_PER_SHORT_SIDE)
    margin = max(4, size // 2)
    start = 0 if plan.recorded_at is None else round(plan.recorded_at)
    clock = _ELAPSED if plan.recorded_at is None else _WALL_CLOCK
    text = rf"%{{pts\:gmtime\:{start}\:{clock}}}"
    return (
        f"drawtext=fontfile='{_escaped(FONT)}':text='{text}':fontsize={size}"
        f":fontcolor=white:box=1:boxcolor=black@0.55:boxborderw={max(2, size // 5)}"
        f":x={margin}:y=h-th-{margin}"
    )


def _escaped(path: Path) -> str:
    """A path as a quoted filter option value (the font ships inside the package)."""
    return str(path).replace("\\", "/").replace("'", r"'\''").replace(":", r"\:")
