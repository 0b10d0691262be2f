"""The local SQS event source against moto's server: batching, partial failures, redrive."""

import json
import textwrap
import threading
import time
import urllib.request

import boto3
import pytest
from moto.server import ThreadedMotoServer

from leadscore_local.event_sources import SqsPoller
from leadscore_local.lambda_runtime import FunctionRuntime
from leadscore_local.template import FunctionSpec, SqsSource

HANDLER = textwrap.dedent("""
    import json
    SEEN = []

    def lambda_handler(event, context):
        SEEN.append([json.loads(r["body"])["n"] for r in event["Records"]])
        failures = [r["messageId"] for r in event["Records"] if json.loads(r["body"])["poison"]]
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}
""")


@pytest.fixture
def moto_url():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset",
                                                  method="POST"))
    server.stop()  # moto's state is per process, not per server: reset it for the next test


def test_poller_batches_deletes_successes_and_redrives_poison_to_dlq(tmp_path, moto_url):
    (tmp_path / "app.py").write_text(HANDLER)
    sqs = boto3.client("sqs", region_name="ap-south-1", endpoint_url=moto_url,
                       aws_access_key_id="x", aws_secret_access_key="x")
    dlq_url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(QueueName="work", Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})})["QueueUrl"]
    for n in range(25):
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"n": n, "poison": n == 7}))

    spec = FunctionSpec("Worker", tmp_path, "app.lambda_handler", 30, 128, {})
    runtime = FunctionRuntime([spec])
    stop = threading.Event()
    source = SqsSource("Work", batch_size=20, batching_window_seconds=1,
                       report_batch_item_failures=True, maximum_concurrency=None)
    poller = SqsPoller(runtime, "Worker", source, queue_url, "arn:work", moto_url, stop)
    poller.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            dlq = sqs.get_queue_attributes(QueueUrl=dlq_url,
                                           AttributeNames=["ApproximateNumberOfMessages"])
            if dlq["Attributes"]["ApproximateNumberOfMessages"] == "1":
                break
            time.sleep(0.2)
    finally:
        stop.set()
        poller.join(5)

    seen = runtime.handler("Worker").__globals__["SEEN"]
    delivered = [n for batch in seen for n in batch]
    assert max(len(batch) for batch in seen) > 10  # batches beyond one ReceiveMessage call
    assert sorted(set(delivered)) == list(range(25))  # nothing lost
    assert delivered.count(7) == 2  # the poison message was retried maxReceiveCount times
    assert all(delivered.count(n) == 1 for n in range(25) if n != 7)  # successes deleted
    (dead,) = sqs.receive_message(QueueUrl=dlq_url)["Messages"]
    assert json.loads(dead["Body"])["n"] == 7
    remaining = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert set(remaining.values()) == {"0"}
