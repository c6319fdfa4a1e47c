"""The table is declared once, on the PynamoDB model, with the names the domain gives it; the
local stack creates it from that model (the CDK stack reads the same names)."""

from __future__ import annotations

from chalicelib.adapters.records import create_table_request
from chalicelib.domain import schema


def test_the_local_table_is_the_model_s_table() -> None:
    request = create_table_request("t")
    assert request["TableName"] == "t"
    assert request["KeySchema"] == [{"AttributeName": schema.TABLE_KEY, "KeyType": "HASH"}]
    indexes = {i["IndexName"]: i for i in request["GlobalSecondaryIndexes"]}
    index = indexes[schema.OWNER_PROJECT_INDEX]
    assert index["KeySchema"] == [
        {"AttributeName": schema.OWNER_PROJECT, "KeyType": "HASH"},
        {"AttributeName": schema.CREATED_AT, "KeyType": "RANGE"},
    ]
    defined = {d["AttributeName"] for d in request["AttributeDefinitions"]}
    assert {schema.TABLE_KEY, schema.OWNER_PROJECT, schema.CREATED_AT} <= defined


def test_the_index_partition_joins_owner_and_project() -> None:
    assert schema.owner_project("user-1", "p-42") == "user-1#p-42"
