"""Every file in events/ is current and does what its name says through `leadscore local invoke`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from leadscore_local.sample_events import build_events

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


def invoke(logical_id: str, event_file: str, *extra: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "leadscore.cli", "local", "--root", str(ROOT), "invoke",
         logical_id, "-e", str(EVENTS / event_file), *extra],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout)


def test_event_files_match_their_generator():
    generated = build_events()
    on_disk = {path.name for path in EVENTS.glob("*.json")}
    assert on_disk == set(generated), "run: python -m leadscore_local.sample_events"
    for name, event in generated.items():
        assert json.loads((EVENTS / name).read_text()) == event, name


@pytest.mark.parametrize(("logical_id", "event_file", "status"), [
    ("IngestFunction", "ingest_contact_creation.json", 200),
    ("IngestFunction", "ingest_mixed_subscriptions.json", 200),
    ("IngestFunction", "ingest_forged_signature.json", 401),
    ("IngestFunction", "ingest_malformed_json.json", 400),
])
def test_ingest_events(logical_id, event_file, status):
    assert invoke(logical_id, event_file)["statusCode"] == status


def test_recorded_signature_is_stale_without_resigning():
    assert invoke("IngestFunction", "ingest_contact_creation.json",
                  "--no-resign")["statusCode"] == 401


def test_score_api_event_returns_a_score():
    response = invoke("ScoreApiFunction", "score_api_request.json")
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["scored"] is True and 0 <= body["score"] <= 100 and body["reasons"]


@pytest.mark.parametrize(("logical_id", "event_file"), [
    ("ScoreFunction", "score_batch.json"),
    ("EnrichFunction", "enrich_batch.json"),
    ("SlackNotifyFunction", "slack_notify_batch.json"),
])
def test_sqs_events_are_processed_without_failures(logical_id, event_file):
    assert invoke(logical_id, event_file) == {"batchItemFailures": []}


@pytest.mark.parametrize(("logical_id", "event_file"), [
    ("ConsentSweepFunction", "consent_sweep_schedule.json"),
    ("RetentionPurgeFunction", "retention_purge_schedule.json"),
])
def test_schedule_events_run(logical_id, event_file):
    assert isinstance(invoke(logical_id, event_file), dict)
