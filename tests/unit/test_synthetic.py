"""Synthetic HubSpot contacts: deterministic, HubSpot-shaped, and with a real signal."""

from datetime import UTC, datetime

import pytest

from leadscore.cli.synthetic import SYNTHETIC_NOW, generate_contacts
from leadscore.model.features import parse_email, parse_timestamp

POSITIVE = {"opportunity", "customer"}
PROPERTIES = {
    "hs_object_id", "email", "firstname", "lastname", "phone", "company", "jobtitle",
    "numemployees", "country", "hs_analytics_source", "hs_analytics_num_visits",
    "hs_analytics_num_page_views", "hs_analytics_last_visit_timestamp", "hs_email_optout",
    "message", "createdate", "lifecyclestage", "dpdp_consent_purposes", "dpdp_consent_updated_at",
}


@pytest.fixture(scope="module")
def contacts():
    return generate_contacts(6000, seed=11)


def _rate(rows):
    return sum(r["lifecyclestage"] in POSITIVE for r in rows) / len(rows)


def test_same_seed_same_contacts_other_seed_other_contacts():
    assert generate_contacts(300, 5) == generate_contacts(300, 5)
    assert generate_contacts(300, 5) != generate_contacts(300, 6)
    assert generate_contacts(0, 5) == []


def test_contacts_look_like_hubspot(contacts):
    for contact in contacts:
        assert set(contact) == PROPERTIES
        assert all(isinstance(v, str) for v in contact.values())
    assert len({c["hs_object_id"] for c in contacts}) == len(contacts)
    assert all(parse_email(c["email"]) in (0.0, 1.0) for c in contacts)
    free = sum(parse_email(c["email"]) == 1.0 for c in contacts) / len(contacts)
    assert 0.3 < free < 0.6
    assert sum(c["country"] == "India" for c in contacts) / len(contacts) > 0.5
    assert {c["lifecyclestage"] for c in contacts} >= POSITIVE | {"lead", "subscriber"}
    assert all(c["hs_email_optout"] in ("true", "false", "") for c in contacts)
    assert any(c["jobtitle"] == "" for c in contacts)  # missing values occur
    for c in contacts:
        visits, views = int(c["hs_analytics_num_visits"]), int(c["hs_analytics_num_page_views"])
        assert views >= visits >= 0
        assert (visits == 0) == (c["hs_analytics_last_visit_timestamp"] == "")
        if c["hs_analytics_last_visit_timestamp"]:
            assert parse_timestamp(c["hs_analytics_last_visit_timestamp"]) <= (
                SYNTHETIC_NOW.timestamp())


def test_consent_mix(contacts):
    purposes = [c["dpdp_consent_purposes"] for c in contacts]
    none = purposes.count("") / len(purposes)
    assert 0.10 <= none <= 0.16
    assert set(purposes) == {"lead_scoring;ai_enrichment", "lead_scoring", ""}
    assert all(c["dpdp_consent_updated_at"] for c in contacts if c["dpdp_consent_purposes"])


def test_positive_rate_and_signal(contacts):
    assert 0.10 <= _rate(contacts) <= 0.20
    engaged = [c for c in contacts if int(c["hs_analytics_num_visits"]) >= 5]
    idle = [c for c in contacts if int(c["hs_analytics_num_visits"]) == 0]
    assert _rate(engaged) > 1.5 * _rate(idle)
    students = [c for c in contacts if c["jobtitle"].strip().lower() in ("student", "intern")]
    executives = [
        c for c in contacts if c["jobtitle"].strip().lower() in ("ceo", "cto", "vp sales")]
    assert _rate(executives) > 2 * _rate(students)
    business = [c for c in contacts if parse_email(c["email"]) == 0.0]
    free = [c for c in contacts if parse_email(c["email"]) == 1.0]
    assert _rate(business) > _rate(free)


def test_now_moves_the_timestamps():
    later = datetime(2030, 1, 1, tzinfo=UTC)
    base, moved = generate_contacts(50, 3), generate_contacts(50, 3, now=later)
    shift = later.timestamp() - SYNTHETIC_NOW.timestamp()
    for a, b in zip(base, moved, strict=True):
        assert parse_timestamp(b["createdate"]) == pytest.approx(
            parse_timestamp(a["createdate"]) + shift, abs=0.002)


def test_emails_are_unique_because_hubspot_rejects_duplicates():
    emails = [c["email"] for c in generate_contacts(3000, 1)]
    assert len(set(emails)) == len(emails)
