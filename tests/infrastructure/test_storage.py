"""The bucket: private, browser uploads through CORS, tidy multipart, events for videos/ only."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.infrastructure, pytest.mark.xdist_group("infra")]


def test_bucket_blocks_all_public_access(s3_stack):
    _, bucket = s3_stack.one("AWS::S3::Bucket")
    assert bucket["Properties"]["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }


def test_bucket_refuses_plain_http(s3_stack):
    _, policy = s3_stack.one("AWS::S3::BucketPolicy")
    denies = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"
    ]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)


def test_bucket_cors_lets_browsers_upload_and_read_etag(s3_stack):
    _, bucket = s3_stack.one("AWS::S3::Bucket")
    (rule,) = bucket["Properties"]["CorsConfiguration"]["CorsRules"]
    assert set(rule["AllowedMethods"]) == {"PUT", "GET", "HEAD", "POST", "DELETE"}
    assert rule["ExposedHeaders"] == ["ETag"]
    # Origins are a deploy parameter; prod has no default, so it cannot ship with "*".
    assert rule["AllowedOrigins"] == {"Ref": "AllowedOrigins"}
    origins = s3_stack.template["Parameters"]["AllowedOrigins"]
    assert origins["Type"] == "CommaDelimitedList"
    if s3_stack.name == "lapse-prod":
        assert "Default" not in origins


def test_bucket_aborts_incomplete_multipart_uploads_after_a_day(s3_stack):
    _, bucket = s3_stack.one("AWS::S3::Bucket")
    rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    assert {"DaysAfterInitiation": 1} in [
        r.get("AbortIncompleteMultipartUpload") for r in rules if r["Status"] == "Enabled"
    ]


def test_objects_created_under_videos_notify_the_queue(s3_stack):
    _, bucket = s3_stack.one("AWS::S3::Bucket")
    queue_id = _processing_queue_id(s3_stack)
    (config,) = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert config["Event"] == "s3:ObjectCreated:*"
    assert config["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "videos/"}]
    assert config["Queue"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    # S3 checks the queue policy when it creates the bucket: the policy must come first.
    policy_id, policy = next(
        (k, v)
        for k, v in s3_stack.of_type("AWS::SQS::QueuePolicy").items()
        if {"Ref": queue_id} in v["Properties"]["Queues"]
    )
    assert policy_id in bucket["DependsOn"]
    (grant,) = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow" and s.get("Principal") == {"Service": "s3.amazonaws.com"}
    ]
    assert grant["Action"] == "sqs:SendMessage"
    assert "aws:SourceArn" in grant["Condition"]["ArnEquals"]


def test_r2_variant_has_no_bucket_and_no_bucket_events(r2_stack):
    assert r2_stack.of_type("AWS::S3::Bucket") == {}
    env = r2_stack.function("api_handler")["Environment"]["Variables"]
    assert env["LAPSE_STORAGE_EVENTS"] == "false"
    assert env["LAPSE_S3_ENDPOINT_URL"] == {"Ref": "R2Endpoint"}
    assert env["LAPSE_S3_REGION"] == "auto"
    # Credentials come from Secrets Manager at deploy time, never as plain parameters.
    for key in ("LAPSE_S3_ACCESS_KEY_ID", "LAPSE_S3_SECRET_ACCESS_KEY"):
        rendered = str(env[key])
        assert "{{resolve:secretsmanager:" in rendered


def _processing_queue_id(stack) -> str:
    return next(k for k in stack.of_type("AWS::SQS::Queue") if k.startswith("ProcessQueue"))
