"""Multipart part sizing: parts grow with the file, stay within S3's and R2's rules.

S3 wants parts of at least 5 MiB (but the last) and at most 10,000 of them; R2 additionally wants
every part but the last to have the same size. lapse uses 10–100 MiB parts, aiming at about 1,000
parts, so a 1 GiB file uploads in 103 parts of 10 MiB and 50 GiB in 985 parts of 52 MiB.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.domain.limits import Limits

MiB = 1024 * 1024
# Files the worker uploads (timelapse, poster) go up as parallel multipart parts above this.
MULTIPART_THRESHOLD = 16 * MiB
TARGET_PARTS = 1000


@dataclass(frozen=True)
class PartPlan:
    size_bytes: int
    part_size: int
    part_count: int

    def part_length(self, part_number: int) -> int:
        """Bytes in part `part_number` (1-based): all equal but the last."""
        if not 1 <= part_number <= self.part_count:
            raise ValueError(f"part number {part_number} outside 1..{self.part_count}")
        if part_number < self.part_count:
            return self.part_size
        return self.size_bytes - self.part_size * (self.part_count - 1)


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def plan_parts(size_bytes: int, limits: Limits) -> PartPlan:
    if size_bytes <= 0:
        raise ValueError("a multipart upload needs at least one byte")
    wanted = _ceil_div(size_bytes, TARGET_PARTS)
    part_size = _ceil_div(wanted, MiB) * MiB
    part_size = max(limits.min_part_bytes, min(limits.max_part_bytes, part_size))
    if _ceil_div(size_bytes, part_size) > limits.max_parts:
        raise ValueError(
            f"{size_bytes} bytes need more than {limits.max_parts} parts of {part_size} bytes"
        )
    return PartPlan(size_bytes, part_size, _ceil_div(size_bytes, part_size))
