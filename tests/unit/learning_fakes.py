"""Fakes and moto set-up for the learning loop's unit tests: a HubSpot with property history,
the snapshot table, artifacts bucket, receipts table and secrets as template.yaml wires them,
and leads that follow a pattern the shipped model does not know."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
from fakes import FakeHubSpot, create_table

from leadscore.cli.synthetic import generate_contacts
from leadscore.hubspot.history import ContactHistory, PropertyVersion
from leadscore.learning.snapshots import Outcome, OutcomeSource, Snapshot, SnapshotStore
from leadscore.timestamps import iso_millis

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_MODEL = ROOT / "layers" / "model" / "model"
BUCKET = "leadscore-test-artifacts"
RECEIPT_KEY = "learning-test-receipt-key"
NOW = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
CONVERTING_TITLES = frozenset({"student", "intern", "teacher", "engineer", "software engineer",
                               "analyst"})


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class HistoryHubSpot(FakeHubSpot):
    """FakeHubSpot that keeps every write of a property with its time, and answers
    `batch_read_history` as HubSpotClient does (oldest version first)."""

    def __init__(self, contacts=None, *, at: datetime = NOW - timedelta(days=200)):
        super().__init__(contacts)
        self.history: dict[str, dict[str, list[PropertyVersion]]] = {
            cid: {name: [PropertyVersion(value, ms(at))] for name, value in props.items()
                  if value is not None}
            for cid, props in self.contacts.items()}
        self.history_reads: list[list[str]] = []

    def set(self, contact_id: str, name: str, value: str, at: datetime) -> None:
        self.contacts.setdefault(contact_id, {})[name] = value
        versions = self.history.setdefault(contact_id, {}).setdefault(name, [])
        versions.append(PropertyVersion(value, ms(at)))
        versions.sort(key=lambda version: version.timestamp)

    def batch_read_history(self, ids, properties, with_history):
        ids = list(ids)
        self.history_reads.append(ids)
        if self.read_error:
            raise self.read_error
        return {cid: ContactHistory(
            id=cid, properties={p: self.contacts[cid].get(p) for p in properties},
            created_at=None,
            history={p: list(self.history.get(cid, {}).get(p, [])) for p in with_history})
            for cid in ids if cid in self.contacts}


def learning_tables(monkeypatch) -> None:
    """Inside mock_aws: the snapshot and receipts tables, the artifacts bucket, the secrets and
    the retrain function's environment."""
    existing = set(boto3.client("dynamodb").list_tables()["TableNames"])
    for table in {"FeatureSnapshotTable", "ErasureReceiptsTable", "LedgerTable"} - existing:
        create_table(table)
    boto3.client("s3").create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-south-1"})
    secrets = boto3.client("secretsmanager")
    known = {secret["Name"] for secret in secrets.list_secrets()["SecretList"]}
    for name, value in {"hubspot-token": "pat-test", "receipt-key": RECEIPT_KEY}.items():
        if name not in known:
            secrets.create_secret(Name=name, SecretString=value)
    for name, value in {
        "HUBSPOT_TOKEN_SECRET": "hubspot-token", "HUBSPOT_BASE_URL": "http://hubspot.invalid",
        "LEDGER_TABLE": "LedgerTable", "RETENTION_DAYS": "180",
        "FEATURE_SNAPSHOT_TABLE": "FeatureSnapshotTable", "MODEL_ARTIFACTS_BUCKET": BUCKET,
        "MODEL_DIR": str(SHIPPED_MODEL), "MODEL_LAYER_NAME": "leadscore-model-test",
        "ERASURE_RECEIPTS_TABLE": "ErasureReceiptsTable",
        "ERASURE_RECEIPT_KEY_SECRET": "receipt-key", "AUDIT_RETENTION_DAYS": "1095",
        "OUTCOME_WINDOW_DAYS": "60",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("STACK_NAME", "LEADSCORE_LOCAL_PROMOTION_URL", "TRAINING_CONSENT_PURPOSE",
                 "MODEL_PROMOTION", "RETRAIN_MIN_POSITIVES", "RETRAIN_MIN_NEGATIVES"):
        monkeypatch.delenv(name, raising=False)


def pattern_leads(n: int, seed: int, now: datetime = NOW) -> list[tuple[dict[str, str], bool]]:
    """(HubSpot properties, converts) of `n` leads: this portal's students, interns, teachers,
    engineers and analysts convert (80 %), the others rarely (5 %)."""
    rng = random.Random(seed)
    out = []
    for contact in generate_contacts(n, seed, now=now):
        title = " ".join((contact.get("jobtitle") or "").split()).casefold()
        contact |= {"lifecyclestage": "lead", "dpdp_consent_purposes": "lead_scoring"}
        out.append((contact, rng.random() < (0.8 if title in CONVERTING_TITLES else 0.05)))
    return out


def seed_snapshots(store: SnapshotStore, leads: Iterable[tuple[dict[str, str], bool]], *,
                   first_scored: datetime, spacing: timedelta = timedelta(minutes=10),
                   columns: list[str] | None = None, outcome: bool = True,
                   model_version: str = "20250630-7e2952cb", first_id: int = 1,
                   ) -> list[Snapshot]:
    """Snapshots of these leads as the score pipeline takes them (first scores `spacing`
    apart), with their outcomes recorded when `outcome`. Contact ids are first_id, +1, ..."""
    from leadscore.model import load

    model = load(SHIPPED_MODEL)
    columns = columns or model.properties
    snapshots = []
    for index, (properties, converted) in enumerate(leads, start=first_id):
        at = first_scored + (index - first_id + 1) * spacing
        snapshot = Snapshot.take(
            contact_id=str(index), portal_id=1, scored_at=at, model_version=model_version,
            score=50, probability=0.1, tier="warm", properties=properties, columns=columns,
            email_column="email", schema_hash=model.metadata["schema_hash"],
            retention_days=180)
        if outcome:
            snapshot = snapshot.model_copy(update={
                "outcome": Outcome.POSITIVE if converted else Outcome.NEGATIVE,
                "outcome_at": iso_millis(at + timedelta(days=3 if converted else 60)),
                "outcome_source": OutcomeSource.WEBHOOK if converted else OutcomeSource.WINDOW})
        snapshots.append(snapshot)
    table = boto3.resource("dynamodb").Table(store.table_name)
    with table.batch_writer() as batch:
        for snapshot in snapshots:
            batch.put_item(Item=snapshot.item())
    return snapshots
