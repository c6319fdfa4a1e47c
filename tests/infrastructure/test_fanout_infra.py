"""What a fanned-out render needs from the stack (issue 14): the processor alone writes segments,
the bucket expires what parts leave behind, and the queue's poller runs as many parts at once as
the processor's reserved concurrency allows (no throttled message hidden for the visibility
timeout)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.infrastructure, pytest.mark.xdist_group("infra")]


def test_only_the_processor_writes_and_removes_segments(s3_stack):
    segment = s3_stack.bucket_object("segments/id/token/0000-a.mp4")
    for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"):
        assert s3_stack.allows("process_uploads", action, segment), action
    assert not s3_stack.allows("api_handler", "s3:PutObject", segment)


def test_segments_left_behind_expire_after_a_day(s3_stack):
    _, bucket = s3_stack.one("AWS::S3::Bucket")
    rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    (rule,) = [r for r in rules if r.get("Prefix") == "segments/"]
    assert rule["Status"] == "Enabled"
    assert rule["ExpirationInDays"] == 1


def test_the_processing_queue_runs_as_many_renders_as_the_processor_may(stack, synthesis):
    configured = synthesis.chalice_config["stages"][stack.name.split("-")[1]]
    reserved = configured["lambda_functions"]["process_uploads"]["reserved_concurrency"]
    function = stack.function("process_uploads")
    assert function["ReservedConcurrentExecutions"] == reserved
    (sqs_event,) = [e["Properties"] for e in function["Events"].values() if e["Type"] == "SQS"]
    assert sqs_event["ScalingConfig"] == {"MaximumConcurrency": reserved}
    # dev runs 4 parts (or renders) at once, prod 20
    assert reserved == {"lapse-dev": 4, "lapse-prod": 20}.get(stack.name, reserved)
