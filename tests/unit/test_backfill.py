"""`leadscore backfill` pages HubSpot's search by ascending id and resumes from its checkpoint;
a search that ignores the sort stops it with a clear error instead of skipping contacts."""

from __future__ import annotations

import pytest
from dpdp_fakes import SearchableHubSpot

from leadscore.cli.backfill import Checkpoint, backfill
from leadscore.hubspot.client import SearchOrderError

PROP = "dpdp_consent_purposes"


class Queue:
    def __init__(self):
        self.sent = []

    def send(self, messages):
        self.sent.extend(messages)
        return len(messages)


class ConsentSearch(SearchableHubSpot):
    """Honours the backfill's IN filter on the consent property too."""

    def search(self, filter_groups, properties, after=None, limit=100, sorts=()):
        in_filters = [f for g in filter_groups for f in g["filters"] if f["operator"] == "IN"]
        rest = [{"filters": [f for f in g["filters"] if f["operator"] != "IN"]}
                for g in filter_groups]
        page, cursor = super().search(rest, properties, after, limit, sorts)
        wanted = {v for f in in_filters for v in f["values"]}
        return [c for c in page if wanted & set((c.properties.get(PROP) or "").split(";"))], cursor


def test_backfill_queues_consented_contacts_page_by_page(tmp_path):
    contacts = {str(i): {PROP: "lead_scoring" if i % 3 else ""} for i in range(1, 251)}
    hubspot, queue = ConsentSearch(contacts), Queue()
    checkpoint = backfill(hubspot=hubspot, queue=queue, checkpoint_path=tmp_path / "c.json",
                          purposes_property=PROP)
    queued = [m.contact_id for m in queue.sent]
    assert queued == [cid for cid in contacts if int(cid) % 3]
    assert checkpoint.complete and checkpoint.last_id == 250
    assert {tuple(s) for s in hubspot.sorts} == {("hs_object_id",)}


def test_backfill_stops_when_the_search_ignores_its_sort(tmp_path):
    hubspot, queue = ConsentSearch({str(i): {PROP: "lead_scoring"} for i in range(1, 5)}), Queue()
    hubspot.ignores_sorts = True
    with pytest.raises(SearchOrderError, match="contact 3 after 4"):
        backfill(hubspot=hubspot, queue=queue, checkpoint_path=tmp_path / "c.json",
                 purposes_property=PROP)
    assert queue.sent == []
    assert not Checkpoint.load(tmp_path / "c.json").complete
