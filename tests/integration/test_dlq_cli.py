"""`leadscore dlq inspect|redrive` against moto's server, and the native move via a stub."""

import json
import urllib.request

import boto3
import pytest
from botocore.stub import Stubber
from moto.server import ThreadedMotoServer

from leadscore.cli import main
from leadscore.cli.dlq import NO_REASON, redrive


@pytest.fixture
def queues(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    sqs = boto3.client("sqs", region_name="ap-south-1", endpoint_url=url)
    dlq = sqs.create_queue(QueueName="ScoreDLQ")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    source = sqs.create_queue(QueueName="ScoreQueue", Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": arn, "maxReceiveCount": 3})})["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"contact_id": f"secret-{i}"}),
                         MessageAttributes={"reason": {"DataType": "String",
                                                       "StringValue": "HubSpot unavailable"}})
    sqs.send_message(QueueUrl=dlq, MessageBody="{}")
    yield url, sqs, dlq, source
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
    server.stop()  # moto's state is per process, not per server: reset it for the next test


def depth(sqs, url):
    return int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])


def test_inspect_counts_reasons_without_printing_bodies_and_hides_nothing(queues, capsys):
    url, sqs, dlq, _ = queues
    assert main(["dlq", "--endpoint-url", url, "inspect", "ScoreDLQ"]) == 0
    out = capsys.readouterr().out
    assert "      3  HubSpot unavailable" in out
    assert f"      1  {NO_REASON}" in out
    assert "secret-" not in out  # bodies name contacts
    assert depth(sqs, dlq) == 4  # inspecting left every message visible


def test_redrive_copy_moves_everything_back_to_the_source_queue(queues, capsys):
    url, sqs, dlq, source = queues
    assert main(["dlq", "--endpoint-url", url, "redrive", "ScoreDLQ", "--copy"]) == 0
    assert "moved 4 messages" in capsys.readouterr().out
    assert depth(sqs, dlq) == 0
    assert depth(sqs, source) == 4


def test_unknown_queue_is_a_clear_error(queues, capsys):
    url, *_ = queues
    assert main(["dlq", "--endpoint-url", url, "inspect", "NoSuchQueue"]) == 2
    assert "no queue named 'NoSuchQueue'" in capsys.readouterr().err


def test_redrive_uses_sqs_message_move_by_default():
    sqs = boto3.client("sqs", region_name="ap-south-1", aws_access_key_id="x",
                       aws_secret_access_key="x")
    dlq, source = "https://sqs/1/ScoreDLQ", "https://sqs/1/ScoreQueue"
    with Stubber(sqs) as stub:
        stub.add_response("get_queue_attributes", {"Attributes": {"QueueArn": "arn:dlq"}})
        stub.add_response("list_dead_letter_source_queues", {"queueUrls": [source]})
        stub.add_response("get_queue_attributes", {"Attributes": {"QueueArn": "arn:src"}})
        stub.add_response("start_message_move_task", {"TaskHandle": "task-1"},
                          {"SourceArn": "arn:dlq", "DestinationArn": "arn:src"})
        result = redrive(sqs, dlq)
    assert (result.method, result.task_handle, result.destination) == (
        "message-move-task", "task-1", source)
