"""The work queue (with its dead-letter queue) and the timelapse table."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.infrastructure, pytest.mark.xdist_group("infra")]


def _queues(stack):
    """((work queue id, properties), (dead-letter queue id, properties))."""
    queues = stack.of_type("AWS::SQS::Queue")
    (work_id,) = [k for k in queues if k.startswith("ProcessQueue")]
    (dlq_id,) = [k for k in queues if k.startswith("ProcessDeadLetters")]
    return (work_id, queues[work_id]["Properties"]), (dlq_id, queues[dlq_id]["Properties"])


def test_visibility_timeout_is_at_least_six_processor_timeouts(stack):
    (_, queue), _ = _queues(stack)
    timeout = stack.function("process_uploads")["Timeout"]
    assert queue["VisibilityTimeout"] >= 6 * timeout


def test_failed_messages_go_to_a_dead_letter_queue(stack):
    (_, queue), (dlq_id, dlq) = _queues(stack)
    redrive = queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq_id, "Arn"]}
    assert 1 < redrive["maxReceiveCount"] <= 10
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    alarms = stack.of_type("AWS::CloudWatch::Alarm").values()
    assert any(
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}
        in a["Properties"]["Dimensions"]
        for a in alarms
    )


def test_queues_are_encrypted(stack):
    for queue in stack.of_type("AWS::SQS::Queue").values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True


def test_processor_consumes_the_stacks_queue_one_message_at_a_time(stack):
    (work_id, queue), _ = _queues(stack)
    events = stack.function("process_uploads")["Events"]
    (sqs_event,) = [e["Properties"] for e in events.values() if e["Type"] == "SQS"]
    # A GetAtt (not an ARN built from a name) makes CloudFormation create the queue first.
    assert sqs_event["Queue"] == {"Fn::GetAtt": [work_id, "Arn"]}
    assert sqs_event["BatchSize"] == 1
    env = stack.function("process_uploads")["Environment"]["Variables"]
    assert env["LAPSE_QUEUE_NAME"] == queue["QueueName"]
    assert env["LAPSE_QUEUE_URL"] == {"Ref": work_id}


def test_table_is_on_demand_with_point_in_time_recovery_and_ttl(stack):
    _, table = stack.one("AWS::DynamoDB::Table")
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]


def test_table_lists_by_owner_and_project_newest_first(stack):
    _, table = stack.one("AWS::DynamoDB::Table")
    indexes = {i["IndexName"]: i for i in table["Properties"]["GlobalSecondaryIndexes"]}
    index = indexes["byOwnerProject"]
    assert index["KeySchema"] == [
        {"AttributeName": "ownerProject", "KeyType": "HASH"},
        {"AttributeName": "createdAt", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    types = {
        a["AttributeName"]: a["AttributeType"] for a in table["Properties"]["AttributeDefinitions"]
    }
    assert types == {"id": "S", "ownerProject": "S", "createdAt": "S", "inFlight": "S"}


def test_the_watchdog_has_a_sparse_index_of_the_work_in_flight(stack):
    _, table = stack.one("AWS::DynamoDB::Table")
    indexes = {i["IndexName"]: i for i in table["Properties"]["GlobalSecondaryIndexes"]}
    assert indexes["inFlight"]["KeySchema"] == [
        {"AttributeName": "inFlight", "KeyType": "HASH"},
        {"AttributeName": "createdAt", "KeyType": "RANGE"},
    ]


def test_prod_keeps_its_data(synthesis):
    prod = synthesis.stacks["lapse-prod"]
    _, table = prod.one("AWS::DynamoDB::Table")
    assert table["Properties"]["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"
    _, bucket = prod.one("AWS::S3::Bucket")
    assert bucket["DeletionPolicy"] == "Retain"


def test_dead_letters_are_consumed_and_their_records_marked_failed(stack):
    (work_id, _), (dlq_id, dlq) = _queues(stack)
    function = stack.function("dead_letters")
    (sqs_event,) = [e["Properties"] for e in function["Events"].values() if e["Type"] == "SQS"]
    assert sqs_event["Queue"] == {"Fn::GetAtt": [dlq_id, "Arn"]}
    assert dlq["VisibilityTimeout"] >= 6 * function["Timeout"]
    assert stack.allows("dead_letters", "sqs:ReceiveMessage", f"arn::{dlq_id}")
    assert not stack.allows("dead_letters", "sqs:ReceiveMessage", f"arn::{work_id}")
    assert not stack.allows("process_uploads", "sqs:ReceiveMessage", f"arn::{dlq_id}")


# --- webhooks: their own queue and function, off the render path ------------------------------


def _queue_named(stack, prefix):
    (found,) = [(k, v["Properties"]) for k, v in stack.of_type("AWS::SQS::Queue").items()
                if k.startswith(prefix)]  # fmt: skip
    return found


def test_webhooks_have_their_own_queue_with_a_dead_letter_queue(stack):
    queue_id, queue = _queue_named(stack, "WebhookQueue")
    dlq_id, dlq = _queue_named(stack, "WebhookDeadLetters")
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq_id, "Arn"]}
    assert queue["VisibilityTimeout"] >= 6 * stack.function("deliver_webhooks")["Timeout"]
    assert queue["QueueName"].endswith("-webhooks")
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    del queue_id


def test_the_webhook_dead_letter_alarm_counts_only_what_sqs_moved_there(stack):
    # Its consumer drains the queue, and deliveries given up on are sent there on purpose (a
    # receiver's fault): the alarm is messages received minus messages sent, on that queue.
    dlq_id, _ = _queue_named(stack, "WebhookDeadLetters")
    dimension = {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}
    (alarm,) = [
        a["Properties"]
        for a in stack.of_type("AWS::CloudWatch::Alarm").values()
        if any(dimension in m.get("MetricStat", {}).get("Metric", {}).get("Dimensions", [])
               for m in a["Properties"].get("Metrics", []))
    ]  # fmt: skip
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    assert metrics["received"]["MetricStat"]["Metric"]["MetricName"] == ("NumberOfMessagesReceived")
    assert metrics["sent"]["MetricStat"]["Metric"]["MetricName"] == "NumberOfMessagesSent"
    (expression,) = [m for m in alarm["Metrics"] if "Expression" in m]
    assert expression["Expression"] == "received - sent"
    assert alarm["Threshold"] == 1


def test_deliveries_given_up_on_are_kept_on_their_records_by_a_function_of_their_own(stack):
    dlq_id, dlq = _queue_named(stack, "WebhookDeadLetters")
    consumer = stack.function("webhook_dead_letters")
    events = [e["Properties"] for e in consumer["Events"].values() if e["Type"] == "SQS"]
    assert [e["Queue"] for e in events] == [{"Fn::GetAtt": [dlq_id, "Arn"]}]
    assert dlq["VisibilityTimeout"] >= 6 * consumer["Timeout"]
    table = f"arn::{stack.one('AWS::DynamoDB::Table')[0]}"
    assert stack.allows("webhook_dead_letters", "dynamodb:UpdateItem", table)
    assert not stack.allows("webhook_dead_letters", "dynamodb:PutItem", table)
    assert stack.allows("webhook_dead_letters", "sqs:ReceiveMessage", f"arn::{dlq_id}")
    # deliver_webhooks forwards what it gives up on, but never reads the dead letters
    assert stack.allows("deliver_webhooks", "sqs:SendMessage", f"arn::{dlq_id}")
    assert not stack.allows("deliver_webhooks", "sqs:ReceiveMessage", f"arn::{dlq_id}")
    assert consumer["Environment"]["Variables"]["LAPSE_WEBHOOK_DLQ_NAME"] == dlq["QueueName"]


def test_a_function_of_their_own_with_its_own_concurrency_drains_them(stack):
    queue_id, queue = _queue_named(stack, "WebhookQueue")
    deliverer = stack.function("deliver_webhooks")
    events = [e["Properties"] for e in deliverer["Events"].values() if e["Type"] == "SQS"]
    assert [e["Queue"] for e in events] == [{"Fn::GetAtt": [queue_id, "Arn"]}]
    assert deliverer["ReservedConcurrentExecutions"] >= 1
    assert deliverer["Environment"]["Variables"]["LAPSE_WEBHOOK_QUEUE_NAME"] == queue["QueueName"]
    # The render function does not read it: a slow receiver never holds a render slot
    renders = stack.function("process_uploads")["Events"].values()
    assert all(e["Properties"]["Queue"] != {"Fn::GetAtt": [queue_id, "Arn"]} for e in renders)


def test_who_may_queue_and_who_may_consume_webhooks(stack):
    queue_id, _ = _queue_named(stack, "WebhookQueue")
    queue = f"arn::{queue_id}"
    for name in ["api_handler", "process_uploads", "watchdog", "dead_letters", "deliver_webhooks"]:
        assert stack.allows(name, "sqs:SendMessage", queue), name
        assert stack.function(name)["Environment"]["Variables"]["LAPSE_WEBHOOK_QUEUE_URL"] == {
            "Ref": queue_id
        }
    assert stack.allows("deliver_webhooks", "sqs:ReceiveMessage", queue)
    assert not stack.allows("process_uploads", "sqs:ReceiveMessage", queue)
    table = f"arn::{stack.one('AWS::DynamoDB::Table')[0]}"
    assert stack.allows("deliver_webhooks", "dynamodb:GetItem", table)
    assert not stack.allows("deliver_webhooks", "dynamodb:UpdateItem", table)
