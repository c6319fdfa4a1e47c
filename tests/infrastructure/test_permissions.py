"""One least-privilege role per function; each stays in its own lane of the bucket."""

from __future__ import annotations

import pytest
from infra_template import FUNCTIONS, render

pytestmark = [pytest.mark.infrastructure, pytest.mark.xdist_group("infra")]

WRITES = ["s3:PutObject", "s3:AbortMultipartUpload"]


POLICY_TYPES = {
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::S3::BucketPolicy",
}


def _all_allow_statements(stack):
    for logical_id, resource in stack.resources.items():
        if resource["Type"] not in POLICY_TYPES:
            continue
        props = resource["Properties"]
        documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        if "PolicyDocument" in props:
            documents.append(props["PolicyDocument"])
        for document in documents:
            for statement in document["Statement"]:
                if statement["Effect"] == "Allow":
                    yield logical_id, statement


def test_no_allow_statement_uses_a_wildcard_action(stack):
    for logical_id, statement in _all_allow_statements(stack):
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert not [a for a in actions if "*" in a], f"{logical_id}: {actions}"


def test_each_function_has_its_own_role(stack):
    roles = [stack.role(name)[0] for name in FUNCTIONS]
    assert len(set(roles)) == len(FUNCTIONS)
    for role_id in roles:
        role = stack.resources[role_id]["Properties"]
        assert "ManagedPolicyArns" not in role
        (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}


def test_logs_are_scoped_to_the_functions_own_log_group(stack):
    for name in FUNCTIONS:
        (logs,) = [s for s in stack.allow_statements(name) if s.get("Sid") == "Logs"]
        (group_id,) = [r["Fn::GetAtt"][0] for r in [logs["Resource"]]]
        group = stack.resources[group_id]["Properties"]
        assert group["LogGroupName"] == f"/aws/lambda/{stack.function(name)['FunctionName']}"
        assert group["RetentionInDays"] in (14, 90)


def test_api_presigns_uploads_only_under_videos(s3_stack):
    video = s3_stack.bucket_object("videos/abc.mp4")
    for action in ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", *WRITES[1:]]:
        assert s3_stack.allows("api_handler", action, video), action
    assert s3_stack.allows("api_handler", "s3:ListMultipartUploadParts", video)


@pytest.mark.parametrize("prefix", ["timelapses/", "posters/"])
def test_api_reads_and_deletes_outputs_but_cannot_write_them(s3_stack, prefix):
    output = s3_stack.bucket_object(f"{prefix}abc.mp4")
    assert s3_stack.allows("api_handler", "s3:GetObject", output)
    assert s3_stack.allows("api_handler", "s3:DeleteObject", output)
    for action in WRITES:
        assert not s3_stack.allows("api_handler", action, output), action


def test_processor_reads_originals_but_cannot_write_them(s3_stack):
    video = s3_stack.bucket_object("videos/abc.mp4")
    assert s3_stack.allows("process_uploads", "s3:GetObject", video)
    assert s3_stack.allows("process_uploads", "s3:DeleteObject", video)  # refused uploads
    # Whether a client's bound multipart upload is still open (then it did not make the object)
    assert s3_stack.allows("process_uploads", "s3:ListMultipartUploadParts", video)
    for action in WRITES:
        assert not s3_stack.allows("process_uploads", action, video), action


@pytest.mark.parametrize("prefix", ["timelapses/", "posters/"])
def test_processor_writes_outputs_with_multipart(s3_stack, prefix):
    output = s3_stack.bucket_object(f"{prefix}abc")
    for action in ["s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"]:
        assert s3_stack.allows("process_uploads", action, output), action


def test_nobody_writes_outside_the_known_prefixes(s3_stack):
    elsewhere = s3_stack.bucket_object("other/abc")
    for name in FUNCTIONS:
        assert not s3_stack.allows(name, "s3:PutObject", elsewhere)
        assert not s3_stack.allows(name, "s3:GetObject", elsewhere)


def test_bookkeeping_functions_touch_no_objects(stack):
    actions = {a for s in stack.allow_statements("dead_letters") for a in _list(s["Action"])}
    assert not [a for a in actions if a.startswith("s3:")]
    # The watchdog only aborts the multipart uploads of originals whose upload window ended
    watchdog = {a for s in stack.allow_statements("watchdog") for a in _list(s["Action"])}
    s3_actions = {a for a in watchdog if a.startswith("s3:")}
    assert s3_actions <= {
        "s3:AbortMultipartUpload",
        "s3:ListBucket",
        "s3:ListBucketMultipartUploads",
    }


def test_the_watchdog_aborts_uploads_of_originals_only(s3_stack):
    video = s3_stack.bucket_object("videos/abc.mp4")
    assert s3_stack.allows("watchdog", "s3:AbortMultipartUpload", video)
    assert not s3_stack.allows(
        "watchdog", "s3:AbortMultipartUpload", s3_stack.bucket_object("timelapses/a")
    )
    for action in ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]:
        assert not s3_stack.allows("watchdog", action, video), action


def test_table_access_per_function(stack):
    _, table_id = None, stack.one("AWS::DynamoDB::Table")[0]
    table = f"arn::{table_id}"
    index = f"{table}/index/byOwnerProject"
    for action in ["GetItem", "PutItem", "UpdateItem", "DeleteItem"]:
        assert stack.allows("api_handler", f"dynamodb:{action}", table), action
    assert stack.allows("api_handler", "dynamodb:Query", index)
    assert not stack.allows("api_handler", "dynamodb:Scan", table)
    for action in ["GetItem", "PutItem", "UpdateItem"]:
        assert stack.allows("process_uploads", f"dynamodb:{action}", table), action
    assert not stack.allows("process_uploads", "dynamodb:DeleteItem", table)
    for action in ["Query", "UpdateItem"]:
        assert stack.allows("watchdog", f"dynamodb:{action}", table), action
    assert stack.allows("watchdog", "dynamodb:Query", f"{table}/index/inFlight")
    # Its cost follows the work in flight: it queries the sparse index and never scans
    for name in FUNCTIONS:
        assert not stack.allows(name, "dynamodb:Scan", table), name
    assert not stack.allows("watchdog", "dynamodb:DeleteItem", table)


def test_queue_access_per_function(stack):
    queue_id = next(k for k in stack.of_type("AWS::SQS::Queue") if k.startswith("ProcessQueue"))
    queue = f"arn::{queue_id}"
    for name in FUNCTIONS:
        # Webhook delivery (and its dead letters) is off the render path: it never queues work
        # for the processor
        allowed = name not in {"deliver_webhooks", "webhook_dead_letters"}
        assert stack.allows(name, "sqs:SendMessage", queue) is allowed, name
    for action in ["ReceiveMessage", "DeleteMessage", "GetQueueAttributes"]:
        assert stack.allows("process_uploads", f"sqs:{action}", queue), action
        if action != "GetQueueAttributes":
            assert not stack.allows("api_handler", f"sqs:{action}", queue), action


def test_r2_roles_have_no_s3_permissions(r2_stack):
    for name in FUNCTIONS:
        actions = {a for s in r2_stack.allow_statements(name) for a in _list(s["Action"])}
        assert not [a for a in actions if a.startswith("s3:")], name


def test_render_reads_intrinsics():
    joined = {"Fn::Join": ["", [{"Fn::GetAtt": ["Media", "Arn"]}, "/videos/*"]]}
    assert render(joined) == "arn::Media/videos/*"


def _list(value):
    return value if isinstance(value, list) else [value]
