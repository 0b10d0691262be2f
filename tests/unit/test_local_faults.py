"""The local stack's AWS and crash faults: they fire exactly N times, only where they should."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from leadscore_local.faults import STACK_CLIENT, Faults, InjectedCrash
from leadscore_local.lambda_runtime import FunctionRuntime
from leadscore_local.template import FunctionSpec


@pytest.fixture
def faults():
    injected = Faults()
    injected.install()
    yield injected
    injected.uninstall()


def make_table(dynamodb) -> None:
    dynamodb.create_table(
        TableName="t", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
    )


@mock_aws
def test_dynamodb_throttles_the_next_n_calls_then_recovers(faults):
    dynamodb = boto3.client("dynamodb", region_name="ap-south-1")
    make_table(dynamodb)
    faults.inject_aws("dynamodb", 2)
    for _ in range(2):
        with pytest.raises(ClientError) as error:
            dynamodb.put_item(TableName="t", Item={"k": {"S": "1"}})
        assert error.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    dynamodb.put_item(TableName="t", Item={"k": {"S": "1"}})
    assert dynamodb.get_item(TableName="t", Key={"k": {"S": "1"}})["Item"]
    assert faults.injected["dynamodb"] == 2


@mock_aws
def test_the_stacks_own_clients_and_other_services_are_not_throttled(faults):
    dynamodb = boto3.client("dynamodb", region_name="ap-south-1")
    setattr(dynamodb, STACK_CLIENT, True)
    make_table(dynamodb)
    faults.inject_aws("dynamodb", 1)
    dynamodb.put_item(TableName="t", Item={"k": {"S": "1"}})  # exempt: the plumbing's client
    boto3.client("sqs", region_name="ap-south-1").list_queues()  # another service
    assert faults.injected["dynamodb"] == 0
    with pytest.raises(ClientError):
        boto3.client("dynamodb", region_name="ap-south-1").scan(TableName="t")


def test_unknown_aws_target_is_refused():
    with pytest.raises(ValueError, match="unknown AWS fault target"):
        Faults().inject_aws("s3", 1)


def test_crash_runs_the_handler_then_fails_the_invocation(tmp_path):
    (tmp_path / "app.py").write_text(
        "calls = []\n"
        "def lambda_handler(event, context):\n"
        "    calls.append(event)\n"
        "    return {'ok': True}\n"
    )
    runtime = FunctionRuntime([FunctionSpec("Worker", tmp_path, "app.lambda_handler", 30, 128, {})])
    runtime.faults.inject_crash("Worker", 1)
    with pytest.raises(InjectedCrash):
        runtime.invoke("Worker", {"n": 1})
    assert runtime.invoke("Worker", {"n": 2}) == {"ok": True}
    module = runtime.handler("Worker").__globals__
    assert module["calls"] == [{"n": 1}, {"n": 2}]  # the crashed invocation did its work
    assert runtime.errors["Worker"] == 1 and runtime.invocations["Worker"] == 2


def test_hubspot_requests_are_counted_under_the_function_that_made_them(tmp_path):
    from leadscore.hubspot.client import RequestBudget, RequestMeter

    (tmp_path / "app.py").write_text(
        "from leadscore.hubspot.client import RequestBudget, RequestMeter\n"
        "def lambda_handler(event, context):\n"
        "    meter = RequestMeter(RequestBudget(1000))\n"
        "    for n in range(event['requests']):\n"
        "        meter.before_request(retry=n > 0)\n"
        "    return meter.requests\n"
    )
    runtime = FunctionRuntime([FunctionSpec("Score", tmp_path, "app.lambda_handler", 30, 128, {}),
                               FunctionSpec("Enrich", tmp_path, "app.lambda_handler", 30, 128, {})])
    runtime.hubspot_requests.install()
    try:
        assert runtime.invoke("Score", {"requests": 3}) == 3  # the meter still counts
        runtime.invoke("Enrich", {"requests": 2})
        RequestMeter(RequestBudget(1000)).before_request()  # outside any invocation
    finally:
        runtime.hubspot_requests.uninstall()
    RequestMeter(RequestBudget(1000)).before_request()  # uninstalled: not counted
    assert runtime.hubspot_requests.snapshot() == {"Score": 3, "Enrich": 2, "other": 1}
