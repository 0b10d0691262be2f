"""`leadscore local env-vars` (leadscore_local.env_vars): the stack's JSON line and template.yaml
→ a `sam local invoke --env-vars` file naming every declared variable of every function."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from leadscore_local import env_vars
from leadscore_local.resources import Provisioned
from leadscore_local.template import functions, load_template

ROOT = Path(__file__).resolve().parents[2]


def fake_resources(template: dict) -> dict[str, dict[str, str]]:
    """What the stack's `resources` would hold, for every resource the template defines."""
    out = {}
    for logical_id in template["Resources"]:
        out[logical_id] = {
            "Ref": f"ref:{logical_id}", "Arn": f"arn:{logical_id}",
            "QueueName": f"name:{logical_id}", "QueueUrl": f"ref:{logical_id}",
            "TopicName": f"name:{logical_id}", "TopicArn": f"ref:{logical_id}",
        }
    return out


@pytest.fixture(scope="module")
def template() -> dict:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def stack_line(template) -> dict:
    return {
        "webhook_url": "http://127.0.0.1:1/webhooks/hubspot",
        "score_api_url": "http://127.0.0.1:1/score",
        "hubspot_url": "http://127.0.0.1:2", "hubspot_token": "pat-outside",
        "hubspot_client_secret": "secret", "aws_endpoint_url": "http://127.0.0.1:3",
        "anthropic_url": "http://127.0.0.1:4", "admin_url": "http://127.0.0.1:5",
        "resources": fake_resources(template),
    }


def test_every_function_gets_every_variable_it_declares(template, stack_line) -> None:
    env = env_vars.sam_env_vars(stack_line, template)
    specs = functions(template, ROOT)
    assert set(env) == {spec.logical_id for spec in specs}
    for spec in specs:
        assert set(env[spec.logical_id]) == set(spec.environment), spec.logical_id
        assert all(isinstance(value, str) for value in env[spec.logical_id].values())


def test_the_sdk_and_the_emulators_are_the_stacks(template, stack_line) -> None:
    env = env_vars.sam_env_vars(stack_line, template)
    for variables in env.values():
        assert variables["AWS_ENDPOINT_URL"] == "http://127.0.0.1:3"
        assert variables["HUBSPOT_BASE_URL"] == "http://127.0.0.1:2"
    assert env["EnrichFunction"]["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:4"
    assert env["EnrichFunction"]["LLM_PROVIDER"] == "anthropic"
    assert env["IngestFunction"]["WEBHOOK_PUBLIC_URL"] == stack_line["webhook_url"]
    assert env["ScoreApiFunction"]["SCORE_API_PUBLIC_URL"] == stack_line["score_api_url"]
    assert env["ScoreFunction"]["MODEL_DIR"] == "/opt/model"  # the layer, as in AWS


def test_references_resolve_to_what_the_stack_provisioned(template, stack_line) -> None:
    env = env_vars.sam_env_vars(stack_line, template)
    assert env["IngestFunction"]["SCORE_QUEUE_URL"] == "ref:ScoreQueue"
    assert env["IngestFunction"]["HUBSPOT_CLIENT_SECRET_SECRET"] == "ref:HubSpotClientSecret"
    assert env["ScoreFunction"]["LEDGER_TABLE"] == "ref:LedgerTable"
    assert env["ScoreFunction"]["HOT_LEADS_TOPIC_ARN"] == "ref:HotLeadsTopic"


def test_the_template_declares_an_empty_endpoint_override(template) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["AWS_ENDPOINT_URL"] == ""  # botocore ignores it empty (deployed stacks)


def test_a_line_without_resources_is_refused(template, stack_line) -> None:
    old = {k: v for k, v in stack_line.items() if k != "resources"}
    with pytest.raises(ValueError, match="resources"):
        env_vars.sam_env_vars(old, template)


def test_a_resource_missing_from_the_line_is_named(template, stack_line) -> None:
    partial = {**stack_line, "resources": {k: v for k, v in stack_line["resources"].items()
                                           if k != "LedgerTable"}}
    with pytest.raises(ValueError, match="LedgerTable"):
        env_vars.sam_env_vars(partial, template)


def test_provisioned_round_trips_through_the_json_line() -> None:
    provisioned = Provisioned(refs={"Q": "url", "T": "table"},
                              attributes={("Q", "Arn"): "arn:q", ("T", "Arn"): "arn:t"})
    again = Provisioned.from_json(json.loads(json.dumps(provisioned.to_json())))
    assert (again.refs, again.attributes) == (provisioned.refs, provisioned.attributes)


def test_main_reads_the_line_and_writes_json(monkeypatch, capsys, stack_line) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(stack_line) + "\n"))
    assert env_vars.main([str(ROOT / "template.yaml")]) == 0
    assert "IngestFunction" in json.loads(capsys.readouterr().out)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert env_vars.main([str(ROOT / "template.yaml")]) == 2
