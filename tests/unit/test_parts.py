"""Multipart part sizing: S3's and R2's rules hold for every upload size lapse accepts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.limits import GiB, Limits, MiB
from chalicelib.domain.parts import plan_parts

LIMITS = Limits()
sizes = st.integers(min_value=1, max_value=LIMITS.max_upload_bytes)


@given(sizes)
def test_parts_cover_the_file_exactly_with_equal_parts_but_the_last(size: int) -> None:
    # When any accepted size is planned
    plan = plan_parts(size, LIMITS)
    last = plan.part_length(plan.part_count)
    # Then S3's part limit holds
    assert 1 <= plan.part_count <= 10_000
    # and every part but the last has part_size bytes (R2's rule), the last is 1..part_size
    if plan.part_count > 1:
        assert plan.part_length(1) == plan.part_length(plan.part_count - 1) == plan.part_size
    assert 0 < last <= plan.part_size
    # and the parts add up to the file
    assert plan.part_size * (plan.part_count - 1) + last == size
    assert plan.size_bytes == size


@given(sizes)
def test_part_size_stays_within_10_and_100_mib(size: int) -> None:
    plan = plan_parts(size, LIMITS)
    assert 10 * MiB <= plan.part_size <= 100 * MiB
    assert plan.part_size % MiB == 0


@given(sizes, sizes)
def test_part_size_never_shrinks_as_the_file_grows(a: int, b: int) -> None:
    small, large = sorted((a, b))
    assert plan_parts(small, LIMITS).part_size <= plan_parts(large, LIMITS).part_size


@given(st.integers(min_value=1, max_value=3000))
def test_every_middle_part_has_the_same_length(count_hint: int) -> None:
    # Given a file of roughly count_hint minimum-size parts plus a few bytes
    size = count_hint * 10 * MiB + 7
    plan = plan_parts(size, LIMITS)
    # Then all parts but the last are exactly part_size, checked one by one
    middle = {plan.part_length(n) for n in range(1, plan.part_count)}
    assert middle <= {plan.part_size}
    assert sum(plan.part_length(n) for n in range(1, plan.part_count + 1)) == size


@pytest.mark.parametrize(
    ("size", "part_size", "part_count"),
    [
        (1, 10 * MiB, 1),
        (10 * MiB, 10 * MiB, 1),
        (10 * MiB + 1, 10 * MiB, 2),
        (101 * MiB, 10 * MiB, 11),
        (1 * GiB, 10 * MiB, 103),
        (50 * GiB, 52 * MiB, 985),
    ],
)
def test_known_sizes(size: int, part_size: int, part_count: int) -> None:
    plan = plan_parts(size, LIMITS)
    assert (plan.part_size, plan.part_count) == (part_size, part_count)


@pytest.mark.parametrize("size", [0, -1])
def test_an_empty_file_cannot_be_planned(size: int) -> None:
    with pytest.raises(ValueError, match="at least one byte"):
        plan_parts(size, LIMITS)


def test_a_file_that_needs_too_many_parts_is_refused() -> None:
    # Given limits whose biggest part cannot fit the file into max_parts parts
    tight = Limits(max_part_bytes=10 * MiB, max_parts=5)
    # Then planning refuses instead of exceeding the part limit
    with pytest.raises(ValueError, match="more than 5 parts"):
        plan_parts(50 * MiB + 1, tight)
    assert plan_parts(50 * MiB, tight).part_count == 5


@pytest.mark.parametrize("number", [0, 4, -1])
def test_part_numbers_outside_the_plan_are_refused(number: int) -> None:
    plan = plan_parts(25 * MiB, LIMITS)
    assert plan.part_count == 3
    with pytest.raises(ValueError, match=r"outside 1\.\.3"):
        plan.part_length(number)
