"""The AWS cost benchmark's arithmetic: ap-south-1 prices times measured usage
(infra/bench/aws_prices.py), and the local stack's meter turning requests into the units AWS
bills (leadscore_local.usage_meter)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "infra" / "bench"
sys.path.insert(0, str(BENCH))

from aws_prices import (  # noqa: E402
    MUMBAI,
    PRICES,
    FunctionUsage,
    Usage,
    cost_by_service,
    fixed_monthly,
    per_thousand,
)

from leadscore_local.usage_meter import (  # noqa: E402
    UsageMeter,
    billing_units,
    dynamodb_units,
    item_size,
)


def test_lambda_is_requests_plus_gb_seconds_of_billed_duration():
    # 1,000 invocations of 1 s at 1,024 MB: 1,000 GB-s; at 512 MB half that.
    one_gb = Usage(functions={"F": FunctionUsage(1000, 1000 * 1000, 1024)})
    half = Usage(functions={"F": FunctionUsage(1000, 1000 * 1000, 512)})
    arm = Usage(functions={"F": FunctionUsage(1000, 1000 * 1000, 1024, "arm64")})

    requests = 1000 * 0.20 / 1e6
    assert cost_by_service(one_gb)["Lambda"] == pytest.approx(requests + 1000 * 0.0000166667)
    assert cost_by_service(half)["Lambda"] == pytest.approx(requests + 500 * 0.0000166667)
    assert cost_by_service(arm)["Lambda"] == pytest.approx(requests + 1000 * 0.0000133334)


def test_every_service_is_priced_by_its_own_unit():
    usage = Usage(functions={}, http_api_requests=1_000_000, sqs_requests=1_000_000,
                  sns_publishes=1_000_000, dynamodb_read_units=1_000_000,
                  dynamodb_write_units=1_000_000, log_bytes=10**9,
                  secrets_manager_calls=10_000, xray_traces=1_000_000)
    cost = cost_by_service(usage)

    assert cost == pytest.approx({
        "Lambda": 0, "API Gateway (HTTP API)": 1.05, "SQS": 0.40, "SNS": 0.50,
        "DynamoDB": 0.1425 + 0.71, "CloudWatch Logs": 0.67, "Secrets Manager": 0.05,
        "X-Ray": 5.00})


def test_per_thousand_scales_and_refuses_nothing_processed():
    assert per_thousand(0.5, 250) == pytest.approx(2.0)
    assert math.isnan(per_thousand(0.5, 0))


def test_fixed_monthly_costs():
    monthly = fixed_monthly(custom_metrics=10, alarms=5, dashboards=2, secrets=3,
                            idle_sqs_requests=1_000_000)
    assert monthly == pytest.approx({
        "CloudWatch custom metrics": 3.0, "CloudWatch alarms": 0.5,
        "CloudWatch dashboards": 6.0, "Secrets Manager secrets": 1.2,
        "SQS idle polling by Lambda": 0.40})


def test_every_price_names_its_region_and_source():
    for name, price in PRICES.items():
        assert price.usd >= 0 and price.unit and price.source, name
        assert price.region == MUMBAI or price.region.startswith("us-east-1"), name


# ----------------------------------------------------------- the meter's billing units


def test_dynamodb_item_size_counts_names_and_values():
    assert item_size({"id": {"S": "abc"}}) == 2 + 3
    assert item_size({"n": {"N": "12345"}}) == 1 + 3  # one byte per two digits, plus one
    assert item_size({"ok": {"BOOL": True}, "x": {"NULL": True}}) == 3 + 2
    assert item_size({"m": {"M": {"a": {"S": "b"}}}}) == 1 + 3 + (1 + 1 + 1)


def test_dynamodb_units_follow_on_demand_rules():
    small, large = {"id": {"S": "a"}}, {"id": {"S": "x" * 5000}}
    assert dynamodb_units("PutItem", {"Item": small}, {}) == {"write_units": 1}
    assert dynamodb_units("PutItem", {"Item": large}, {}) == {"write_units": 5}  # 1 KB a unit
    assert dynamodb_units("GetItem", {}, {"Item": large}) == {"read_units": 1.0}  # eventual
    assert dynamodb_units("GetItem", {"ConsistentRead": True}, {"Item": large}) == {
        "read_units": 2}
    assert dynamodb_units("GetItem", {}, {}) == {"read_units": 0.5}  # nothing found still costs
    batch = {"RequestItems": {"T": {"Keys": [small, small, small], "ConsistentRead": True}}}
    assert dynamodb_units("BatchGetItem", batch, {"Responses": {"T": [small]}}) == {
        "read_units": 3}
    assert dynamodb_units("TransactWriteItems", {"TransactItems": [{"Put": {"Item": small}}]},
                          {}) == {"write_units": 2}


def test_sqs_and_sns_bill_each_64_kb_of_payload():
    batch = {"Entries": [{"Id": str(i)} for i in range(10)]}
    assert billing_units("sqs", "SendMessageBatch", batch, {}, 1000) == {
        "chunks": 1, "messages": 10, "empty": 0}
    assert billing_units("sqs", "SendMessageBatch", batch, {}, 200 * 1024)["chunks"] == 4
    assert billing_units("sqs", "ReceiveMessage", {}, {}, 300) == {
        "chunks": 1, "messages": 0, "empty": 1}
    received = {"Messages": [{"Body": "x" * 100}, {"Body": "y" * 100}]}
    assert billing_units("sqs", "ReceiveMessage", {}, received, 300)["messages"] == 2
    published = {"PublishBatchRequestEntries.member.1.Id": "a",
                 "PublishBatchRequestEntries.member.2.Id": "b"}
    assert billing_units("sns", "PublishBatch", published, {}, 4000) == {
        "chunks": 2, "messages": 2}


def test_the_meter_bills_each_invocation_rounded_up_to_the_millisecond():
    meter = UsageMeter()
    meter.invoked("F", 0.0101, {"Records": [{}, {}]})
    meter.invoked("F", 0.0000004, {})

    (figures,) = meter.snapshot()["lambda"].values()
    assert figures == {"invocations": 2, "billed_ms": 11 + 1, "duration_ms": 10.1,
                       "records": 2}


def test_the_installed_meter_counts_each_request_by_caller_with_its_units(monkeypatch):
    import boto3
    from botocore.client import BaseClient
    from moto import mock_aws

    from leadscore_local.request_attribution import HubSpotRequestsByFunction

    for name, value in {"AWS_DEFAULT_REGION": "ap-south-1", "AWS_ACCESS_KEY_ID": "x",
                        "AWS_SECRET_ACCESS_KEY": "x"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(BaseClient, "_make_request", BaseClient._make_request)  # undone after
    meter = UsageMeter()
    meter.install()
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(TableName="T", BillingMode="PAY_PER_REQUEST",
                              KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "id",
                                                     "AttributeType": "S"}])
        with HubSpotRequestsByFunction().invoking("ScoreFunction"):
            dynamodb.put_item(TableName="T", Item={"id": {"S": "1"}, "blob": {"S": "x" * 3000}})
            dynamodb.get_item(TableName="T", Key={"id": {"S": "1"}}, ConsistentRead=True)

    counted = meter.snapshot()["aws_requests"]
    assert counted["ScoreFunction dynamodb PutItem:T"] == {"requests": 1, "write_units": 3}
    assert counted["ScoreFunction dynamodb GetItem:T"] == {"requests": 1, "read_units": 1}
    assert counted["other dynamodb CreateTable:T"] == {"requests": 1}
