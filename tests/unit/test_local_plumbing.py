"""The local stack's translation layer: template → functions, references, Lambda events."""

import base64
import json
import textwrap

import pytest

from leadscore_local.event_sources import http_api_event, http_api_response, rate_seconds
from leadscore_local.resources import Provisioned, Resolver
from leadscore_local.template import functions, load_template

TEMPLATE = textwrap.dedent("""
    Transform: AWS::Serverless-2016-10-31
    Parameters:
      Stage: {Type: String, Default: dev}
    Globals:
      Function:
        Timeout: 30
        Environment:
          Variables:
            STAGE: !Ref Stage
            SHARED: same
    Resources:
      Queue:
        Type: AWS::SQS::Queue
      Worker:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: functions/worker/
          Handler: app.lambda_handler
          Environment:
            Variables:
              QUEUE_URL: !Ref Queue
              QUEUE_ARN: !GetAtt Queue.Arn
              NAME: !Sub "${Stage}-${Queue.QueueName}"
          Events:
            Hook:
              Type: HttpApi
              Properties: {Path: /hook, Method: post}
            Jobs:
              Type: SQS
              Properties:
                Queue: !GetAtt Queue.Arn
                BatchSize: 50
                MaximumBatchingWindowInSeconds: 2
                FunctionResponseTypes: [ReportBatchItemFailures]
            Nightly:
              Type: Schedule
              Properties: {Schedule: rate(1 day)}
""")


@pytest.fixture
def template(tmp_path):
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    return load_template(path)


def test_functions_merge_globals_and_read_every_event_kind(template, tmp_path):
    (spec,) = functions(template, tmp_path)
    assert spec.logical_id == "Worker"
    assert spec.timeout == 30
    assert spec.code_dir == (tmp_path / "functions/worker").resolve()
    assert spec.environment["SHARED"] == "same"
    assert spec.environment["QUEUE_URL"] == {"Ref": "Queue"}
    assert [(r.method, r.path) for r in spec.http_routes] == [("POST", "/hook")]
    (source,) = spec.sqs_sources
    assert (source.queue, source.batch_size, source.batching_window_seconds) == ("Queue", 50, 2)
    assert source.report_batch_item_failures
    assert spec.schedules[0].expression == "rate(1 day)"


def test_resolver_handles_ref_getatt_and_sub(template, tmp_path):
    (spec,) = functions(template, tmp_path)
    provisioned = Provisioned(
        refs={"Queue": "http://sqs/q"},
        attributes={("Queue", "Arn"): "arn:q", ("Queue", "QueueName"): "q"},
    )
    resolve = Resolver(provisioned, {"Stage": "local"})
    env = {name: resolve(value) for name, value in spec.environment.items()}
    assert env == {"STAGE": "local", "SHARED": "same", "QUEUE_URL": "http://sqs/q",
                   "QUEUE_ARN": "arn:q", "NAME": "local-q"}
    with pytest.raises(KeyError):
        resolve({"Ref": "Missing"})


def test_http_api_event_is_payload_format_2():
    event = http_api_event("POST", "/hook?a=1", {"Host": "127.0.0.1:9", "X-Thing": "v"}, b"{}")
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /hook"
    assert event["rawQueryString"] == "a=1"
    assert event["queryStringParameters"] == {"a": "1"}
    assert event["headers"]["x-thing"] == "v"
    assert event["requestContext"]["domainName"] == "127.0.0.1:9"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert (event["body"], event["isBase64Encoded"]) == ("{}", False)

    binary = http_api_event("POST", "/hook", {}, b"\xff\x00")
    assert binary["isBase64Encoded"] and base64.b64decode(binary["body"]) == b"\xff\x00"


def test_http_api_response_reads_both_return_styles():
    assert http_api_response({"statusCode": 401, "body": "no"}) == (401, {}, b"no")
    encoded = {"statusCode": 200, "isBase64Encoded": True,
               "body": base64.b64encode(b"bin").decode()}
    assert http_api_response(encoded)[2] == b"bin"
    status, _headers, body = http_api_response({"ok": True})
    assert status == 200 and json.loads(body) == {"ok": True}


@pytest.mark.parametrize(("expression", "seconds"), [
    ("rate(1 day)", 86400), ("rate(5 minutes)", 300), ("rate(2 hours)", 7200),
    ("cron(0 3 * * ? *)", None),
])
def test_rate_seconds(expression, seconds):
    assert rate_seconds(expression) == seconds
