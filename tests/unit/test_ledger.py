"""`leadscore.scoring.ledger.DynamoDBLedger` (moto): event order, event ids, first score and the
hot-alert claim; `record`'s read-then-conditional-PutItem keeps the semantics of the conditional
UpdateItem it replaced, also when another writer changes the item between the read and the
write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fakes import create_table
from moto import mock_aws

from leadscore.scoring.ledger import DynamoDBLedger, LedgerEntry

NOW = datetime(2025, 1, 15, 3, 4, 5, 678000, tzinfo=UTC)


@pytest.fixture
def ledger(aws_env):
    with mock_aws():
        create_table("LedgerTable")
        yield DynamoDBLedger("LedgerTable")


@pytest.fixture
def calls(ledger):
    """DynamoDB operations the ledger sends, by name."""
    seen: list[str] = []
    ledger._table.meta.client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: seen.append(model.name))
    return seen


def entry(cid: str, last_event_at: int, *, tier: str = "hot", score: int = 90,
          events: tuple[str, ...] = (), at: datetime = NOW) -> LedgerEntry:
    return LedgerEntry.for_score(contact_id=cid, score=score, probability=0.9, tier=tier,
                                 model_version="m", scored_at=at, retention_days=180,
                                 last_event_at=last_event_at, recent_event_ids=events)


def item(ledger: DynamoDBLedger, cid: str) -> dict:
    return ledger._table.get_item(Key={"contact_id": cid}, ConsistentRead=True)["Item"]


def test_unchanged_items_are_written_with_one_read_and_puts_only(ledger, calls):
    ledger.record([entry("1", 100), entry("2", 100)])
    calls.clear()
    outcome = ledger.record([entry("1", 200, score=40), entry("2", 200), entry("3", 200)])
    assert outcome.recorded == {"1", "2", "3"}
    assert sorted(calls) == ["BatchGetItem", "PutItem", "PutItem", "PutItem"]
    assert item(ledger, "1")["score"] == 40


def test_first_score_is_kept_and_other_attributes_survive(ledger):
    ledger.record([entry("1", 100, at=NOW)])
    ledger._table.update_item(Key={"contact_id": "1"}, UpdateExpression="SET extra = :x",
                              ExpressionAttributeValues={":x": "kept"})
    later = NOW + timedelta(days=3)
    ledger.record([entry("1", 200, at=later, events=("p:2",))])
    stored = item(ledger, "1")
    assert stored["first_scored_at"] == "2025-01-15T03:04:05.678Z"
    assert stored["scored_at"] == "2025-01-18T03:04:05.678Z"
    assert stored["extra"] == "kept"
    assert stored["recent_event_ids"] == ["p:2"]


def test_older_event_is_superseded_without_writing(ledger, calls):
    ledger.record([entry("1", 200)])
    calls.clear()
    assert ledger.record([entry("1", 100)]).superseded == {"1"}
    assert calls == ["BatchGetItem"]
    assert item(ledger, "1")["last_event_at"] == 200


def test_newer_event_applied_after_the_read_wins(ledger, monkeypatch):
    ledger.record([entry("1", 100)])
    stale = ledger._items(["1"])
    ledger.record([entry("1", 300, score=10)])  # another batch, between read and write
    monkeypatch.setattr(ledger, "_items", lambda ids: stale)
    assert ledger.record([entry("1", 200)]).superseded == {"1"}
    assert (item(ledger, "1")["last_event_at"], item(ledger, "1")["score"]) == (300, 10)


def test_hot_alert_claimed_after_the_read_is_kept(ledger, monkeypatch):
    ledger.record([entry("1", 100)])
    stale = ledger._items(["1"])
    assert ledger.claim_hot_alert("1", NOW)  # between this batch's read and its write
    monkeypatch.setattr(ledger, "_items", lambda ids: stale)
    assert ledger.record([entry("1", 200)]).recorded == {"1"}
    assert ledger.states(["1"])["1"].hot_alerted
    assert ledger.claim_hot_alert("1", NOW) is False  # so the alert is not sent twice


def test_item_erased_after_the_read_is_written_again(ledger, monkeypatch):
    ledger.record([entry("1", 100)])
    stale = ledger._items(["1"])
    ledger.delete_many(["1"])
    monkeypatch.setattr(ledger, "_items", lambda ids: stale)
    assert ledger.record([entry("1", 200)]).recorded == {"1"}
    assert item(ledger, "1")["last_event_at"] == 200


def test_two_first_writers_both_decide_by_event_order(ledger, monkeypatch):
    monkeypatch.setattr(ledger, "_items", lambda ids: {})  # both read "no item"
    assert ledger.record([entry("1", 200)]).recorded == {"1"}
    assert ledger.record([entry("1", 100)]).superseded == {"1"}
    assert item(ledger, "1")["last_event_at"] == 200


def test_ledger_records_only_in_event_order(ledger):
    assert ledger.record([entry("1", 200, events=("p:2",))]).recorded == {"1"}
    outcome = ledger.record([entry("1", 100), entry("2", 100)])
    assert (outcome.recorded, outcome.superseded) == ({"2"}, {"1"})
    state = ledger.states(["1", "2", "3"])
    assert set(state) == {"1", "2"}
    assert (state["1"].last_event_at, state["1"].recent_event_ids) == (200, frozenset({"p:2"}))


def test_hot_alert_is_claimed_once_and_forgotten_when_leaving_hot(ledger):
    ledger.record([entry("1", 1)])
    assert ledger.claim_hot_alert("1", NOW) is True
    assert ledger.claim_hot_alert("1", NOW) is False  # a concurrent batch does not re-send
    ledger.record([entry("1", 2)])  # still hot: the claim stays
    assert ledger.states(["1"])["1"].hot_alerted
    ledger.record([entry("1", 3, tier="warm")])
    assert not ledger.states(["1"])["1"].hot_alerted
    assert ledger.claim_hot_alert("1", NOW) is True  # alerted again when it turns hot again
    assert ledger.claim_hot_alert("unknown", NOW) is False  # never alerts an unrecorded contact
