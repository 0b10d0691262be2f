"""`leadscore hubspot export` against the HubSpot emulator over real HTTP: consent filter,
keyset paging past the search window, pacing, and export → train in two commands."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from leadscore.cli import main
from leadscore.cli.hubspot_export import ExportResult, export_columns, export_contacts
from leadscore.cli.synthetic import generate_contacts
from leadscore.hubspot.client import Contact, HubSpotClient, SearchOrderError
from leadscore.model import load
from leadscore.model.config import load_config
from leadscore_local.hubspot_emulator import HubSpotEmulator

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ROOT / "layers/model/features.toml"
TOKEN = "pat-export-test"
CLIENT = "export"


def _leads(n: int, seed: int) -> list[dict[str, str]]:
    """Synthetic contacts as a portal holds them: no id (HubSpot assigns it), unset
    properties absent; about 13 % without the lead_scoring purpose."""
    return [{k: v for k, v in c.items() if k != "hs_object_id" and v != ""}
            for c in generate_contacts(n, seed)]


@pytest.fixture(scope="module")
def portal():
    with HubSpotEmulator(tokens={TOKEN: CLIENT}) as emulator:
        leads = _leads(600, seed=11)
        ids = emulator.create_contacts(leads, announce=False)
        yield emulator, dict(zip(ids, leads, strict=True))


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def test_export_then_train_in_two_commands(portal, tmp_path, monkeypatch, capsys):
    emulator, created = portal
    monkeypatch.setenv("HUBSPOT_TOKEN", TOKEN)
    out = tmp_path / "contacts.csv"
    assert main(["hubspot", "export", "--config", str(FEATURES), "--out", str(out),
                 "--base-url", emulator.url]) == 0
    captured = capsys.readouterr()
    assert "contacts exported" in captured.err  # progress goes to stderr
    header, rows = _read(out)
    consenting = {i for i, lead in created.items()
                  if "lead_scoring" in lead.get("dpdp_consent_purposes", "").split(";")}
    assert 0 < len(consenting) < len(created)
    assert header == export_columns(load_config(FEATURES))
    assert "dpdp_consent_purposes" not in header and "firstname" not in header
    assert [row["hs_object_id"] for row in rows] == sorted(consenting, key=int)
    for row in rows[:50]:
        lead = created[row["hs_object_id"]]
        assert row["jobtitle"] == lead.get("jobtitle", "")
        assert row["lifecyclestage"] == lead["lifecyclestage"]
    assert f"{len(rows):,} contacts → {out}" in captured.out
    assert emulator.stats()["rate_limited"].get(CLIENT, 0) == 0  # paced below the limit

    assert main(["train", "--data", str(out), "--config", str(FEATURES),
                 "--out", str(tmp_path / "model")]) == 0
    model = load(tmp_path / "model")
    assert model.metadata["metrics"]["rows"] == len(rows)


def test_keyset_paging_crosses_the_search_window(portal, tmp_path):
    """HubSpot stops a query at 10,000 results; the export then continues with
    `hs_object_id > last`. A 60-result window exercises the same path on 600 contacts."""
    emulator, created = portal
    pages: list[int] = []
    result = export_contacts(
        HubSpotClient(TOKEN, emulator.url), load_config(FEATURES), tmp_path / "small.csv",
        page_size=20, window=60,
        progress=lambda r: pages.append(r.written + r.skipped_no_consent),
    )
    _, rows = _read(tmp_path / "small.csv")
    ids = [row["hs_object_id"] for row in rows]
    assert len(ids) == len(set(ids)) == result.written
    assert ids == sorted(ids, key=int)
    assert result.windows > len(rows) // 60 and result.requests == len(pages)
    assert result.written == sum(
        "lead_scoring" in lead.get("dpdp_consent_purposes", "") for lead in created.values())


def test_missing_token_and_hubspot_errors_are_clear(portal, tmp_path, monkeypatch, capsys):
    emulator, _ = portal
    monkeypatch.delenv("HUBSPOT_TOKEN", raising=False)
    args = ["hubspot", "export", "--config", str(FEATURES), "--out", str(tmp_path / "x.csv"),
            "--base-url", emulator.url]
    assert main(args) == 2
    assert "set HUBSPOT_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("HUBSPOT_TOKEN", "pat-wrong")
    assert main(args) == 2
    assert "status=401" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


class _FakeSearch:
    """Pages of contacts as a HubSpotClient.search would return them."""

    def __init__(self, pages: list[list[Contact]]) -> None:
        self.pages = pages
        self.calls: list[dict] = []

    def search(self, filter_groups, properties, after=None, limit=100, sorts=()):
        self.calls.append({"filters": filter_groups, "after": after, "sorts": list(sorts)})
        page = int(after or 0)
        next_after = str(page + 1) if page + 1 < len(self.pages) else None
        return self.pages[page], next_after


def _contact(i: int, consent: str | None) -> Contact:
    return Contact(id=str(i), properties={"hs_object_id": str(i), "jobtitle": "CEO",
                                          "dpdp_consent_purposes": consent})


def test_consent_is_checked_again_locally(tmp_path):
    """The search filter asks HubSpot for lead_scoring only; whatever comes back without it
    (or with a value we cannot read) is still not written."""
    fake = _FakeSearch([[_contact(1, "lead_scoring"), _contact(2, "lead_scoring;bogus"),
                         _contact(3, ""), _contact(4, "ai_enrichment;lead_scoring")]])
    result = export_contacts(fake, load_config(FEATURES), tmp_path / "c.csv")
    _, rows = _read(tmp_path / "c.csv")
    assert [row["hs_object_id"] for row in rows] == ["1", "4"]
    assert result == ExportResult(written=2, skipped_no_consent=2, requests=1, windows=1)
    assert fake.calls[0]["sorts"] == ["hs_object_id"]  # keyset paging needs id order
    [group] = fake.calls[0]["filters"]
    assert {"propertyName": "dpdp_consent_purposes", "operator": "IN",
            "values": ["lead_scoring"]} in group["filters"]


def test_out_of_order_results_stop_the_export(tmp_path):
    fake = _FakeSearch([[_contact(5, "lead_scoring"), _contact(3, "lead_scoring")]])
    with pytest.raises(SearchOrderError, match="contact 3 after 5"):
        export_contacts(fake, load_config(FEATURES), tmp_path / "c.csv")
    assert not (tmp_path / "c.csv").exists()
