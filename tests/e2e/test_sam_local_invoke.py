"""`sam local invoke` for real (issue 17): every function built by `sam build` runs in a
Lambda-style container (infra/lambda_image/build.sh) with each of its events in events/, against
the local stack, and each answer is checked against what the stack's emulators then hold.

Needs a Docker engine (`.ci/run` starts dockerd) and `make build`'s output; skipped with the
reason when either is missing. One `sam local invoke` takes about 20 s here, most of it SAM
adding the layers to the image, so the module takes a few minutes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import ROOT

from leadscore_local.sam_invoke import (
    BUILT_TEMPLATE,
    INVOKE_ORDER,
    Invocation,
    SamLocal,
    build_image,
    docker_engine_answers,
    for_stack,
    sample_events,
    seed_sample_contacts,
    write_env_vars,
)
from leadscore_local.template import load_template

pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.build,
              pytest.mark.timeout(1800)]

EVENTS = ROOT / "events"
NO_CONSENT, SCORE_ONLY, WITH_ENRICHMENT = "101", ["102", "103"], ["104", "105"]


def contacts(stack) -> dict[str, dict[str, Any]]:
    from urllib.request import urlopen

    with urlopen(stack.info["hubspot_url"] + "/_emulator/contacts", timeout=30) as response:
        return {c["id"]: c["properties"] for c in json.loads(response.read())["results"]}


@pytest.fixture(scope="module")
def sam(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    if not docker_engine_answers():
        pytest.skip("no Docker engine answers `docker info`: start dockerd (.ci/run does)")
    if not BUILT_TEMPLATE.is_file():
        pytest.skip(f"no `sam build` output in {BUILT_TEMPLATE.parent}: run `make build` first")
    image = build_image()
    stack = request.getfixturevalue("stack")  # started only when the test can run
    seed_sample_contacts(stack.info)
    env_file = tmp_path_factory.mktemp("sam") / "env.json"
    write_env_vars(stack.info, env_file)
    local = SamLocal(image, env_file)
    yield local
    local.remove_containers()


@pytest.fixture(scope="module")
def answers(sam: SamLocal, stack) -> dict[str, Any]:
    """Every sample event invoked once, in INVOKE_ORDER; after each, the emulator's contacts and
    the stack's counters, so a test sees exactly what that invocation changed."""
    out: dict[str, Any] = {"before": {"contacts": contacts(stack), "stats": stack.stats()}}
    for logical_id, path in sample_events():
        event = for_stack(logical_id, json.loads(path.read_text()), stack.info)
        out[path.name] = {"invocation": sam.invoke(logical_id, event),
                          "contacts": contacts(stack), "stats": stack.stats()}
    return out


def answer(answers: dict[str, Any], event_file: str) -> Any:
    invocation: Invocation = answers[event_file]["invocation"]
    assert invocation.error is None, invocation.log[-3000:]
    return invocation.response


def test_every_function_has_sample_events_and_each_was_invoked(answers) -> None:
    invoked = {answers[path.name]["invocation"].logical_id for _, path in sample_events()}
    assert invoked == set(INVOKE_ORDER)
    for _, path in sample_events():
        invocation = answers[path.name]["invocation"]
        assert invocation.duration_ms and invocation.runtime_init_ms, path.name


def test_enrichment_writes_the_llm_summary_to_the_contact(answers) -> None:
    assert answer(answers, "enrich_batch.json") == {"batchItemFailures": []}
    assert not answers["before"]["contacts"]["104"].get("ai_lead_summary")
    assert answers["enrich_batch.json"]["contacts"]["104"]["ai_lead_summary"]


def test_score_batch_reads_scores_and_writes_back_consented_contacts(answers) -> None:
    assert answer(answers, "score_batch.json") == {"batchItemFailures": []}
    before, after = answers["enrich_batch.json"], answers["score_batch.json"]
    for contact_id in SCORE_ONLY + WITH_ENRICHMENT:
        properties = after["contacts"][contact_id]
        assert 0 <= int(properties["ai_lead_score"]) <= 100, contact_id
        assert properties["ai_lead_tier"] and properties["ai_lead_model_version"], contact_id
    assert not after["contacts"][NO_CONSENT].get("ai_lead_score")  # no consent: untouched
    # The container did it: the stack's own score function never ran, and the functions'
    # HubSpot token (read from the stack's Secrets Manager) made the requests.
    assert "ScoreFunction" not in after["stats"]["invocations"]
    assert after["stats"]["hubspot_requests"] > before["stats"]["hubspot_requests"]


def test_score_batch_reports_only_the_unreadable_message_as_failed(answers) -> None:
    event = json.loads((EVENTS / "score_batch_unreadable_message.json").read_text())
    readable, unreadable = event["Records"]
    assert answer(answers, "score_batch_unreadable_message.json") == {
        "batchItemFailures": [{"itemIdentifier": unreadable["messageId"]}]}
    contact_id = json.loads(readable["body"])["contact_id"]
    assert answers["score_batch_unreadable_message.json"]["contacts"][contact_id]["ai_lead_score"]


def test_score_api_scores_the_signed_request(answers) -> None:
    response = answer(answers, "score_api_request.json")
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["scored"] is True and 0 <= body["score"] <= 100 and body["reasons"]


@pytest.mark.parametrize(("event_file", "status"), [
    ("ingest_contact_creation.json", 200),
    ("ingest_mixed_subscriptions.json", 200),
    ("ingest_forged_signature.json", 401),
    ("ingest_malformed_json.json", 400),
])
def test_webhooks_are_answered_like_hubspot_expects(answers, event_file: str, status: int) -> None:
    assert answer(answers, event_file)["statusCode"] == status


def test_an_accepted_webhook_reaches_the_stacks_queue(answers) -> None:
    body = json.loads(answer(answers, "ingest_contact_creation.json")["body"])
    assert body["queued"] == 3  # SendMessageBatch to the stack's ScoreQueue succeeded


def test_a_stale_recorded_signature_is_rejected(sam: SamLocal, answers) -> None:
    event = json.loads((EVENTS / "ingest_contact_creation.json").read_text())  # not re-signed
    invocation = sam.invoke("IngestFunction", event)
    assert invocation.error is None and invocation.response["statusCode"] == 401


def test_the_rejection_comes_after_reading_the_secret(sam: SamLocal, answers,
                                                      tmp_path: Path) -> None:
    """The 401 above is the verdict on the secret read from the stack's Secrets Manager: with
    the secret's name changed to one the stack does not have, the same request fails reading
    it (ResourceNotFound from moto's Secrets Manager) instead of being answered."""
    env = json.loads(sam.env_file.read_text())
    env["IngestFunction"]["HUBSPOT_CLIENT_SECRET_SECRET"] += "-missing"
    missing = tmp_path / "env-missing-secret.json"
    missing.write_text(json.dumps(env))
    event = json.loads((EVENTS / "ingest_forged_signature.json").read_text())
    invocation = sam.invoke("IngestFunction", event, env_file=missing)
    assert invocation.error == "GetParameterError"
    assert "ResourceNotFoundException" in invocation.response["errorMessage"]


@pytest.mark.parametrize("event_file", ["consent_sweep_schedule.json",
                                        "retention_purge_schedule.json",
                                        "model_monitor_schedule.json",
                                        "model_retrain_schedule.json"])
def test_scheduled_jobs_finish(answers, event_file: str) -> None:
    result = answer(answers, event_file)
    assert isinstance(result, dict) and "errorMessage" not in result


def test_every_function_in_the_template_is_invoked() -> None:
    functions = {logical_id for logical_id, resource in load_template(
        ROOT / "template.yaml")["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"}
    assert set(INVOKE_ORDER) == functions


def test_the_retrain_refuses_a_portal_without_enough_outcomes(answers) -> None:
    decision = answer(answers, "model_retrain_schedule.json")
    assert decision["result"] == "refused" and decision["trigger"] == "schedule"


def test_the_monitor_reads_the_model_layers_reference(answers) -> None:
    assert answer(answers, "model_monitor_schedule.json")["reference"] is True


def test_consent_sweep_examined_the_scored_contacts(answers) -> None:
    assert answer(answers, "consent_sweep_schedule.json")["examined"] >= len(
        SCORE_ONLY + WITH_ENRICHMENT)


def test_no_container_is_left_behind(sam: SamLocal, answers) -> None:
    assert sam.container_ids, "SAM printed no container ids"
    assert sam.remove_containers() == []  # SAM removed every container it started
