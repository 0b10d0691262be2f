"""The `ai_*` property descriptions reps read as tooltips: written by `leadscore hubspot setup`
for the model in use, kept current when its tiers change, served back by the HubSpot emulator
and read through the official SDK; checked against HubSpot's properties OpenAPI description.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hubspot import HubSpot
from openapi_schema_validator import OAS30Validator

from leadscore.cli import main
from leadscore.hubspot.properties import AI_PROPERTIES, TIERS, ai_property_specs
from leadscore.hubspot.setup import _options
from leadscore.model import load
from leadscore.scoring.descriptions import refresh_property_descriptions, score_guide
from leadscore_local.hubspot_emulator import HubSpotEmulator

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "layers/model/model"
TOKEN = "pat-test-setup"
OPENAPI = ROOT / "tests" / "fixtures" / "hubspot-openapi"  # vendored: source in its README


@pytest.fixture
def emulator() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(tokens={TOKEN: "admin"}) as emu:
        yield emu


@pytest.fixture
def client(emulator: HubSpotEmulator) -> HubSpot:
    return HubSpot(access_token=TOKEN, host=emulator.url)


@pytest.fixture(scope="module")
def properties_openapi() -> dict[str, Any]:
    return json.loads((OPENAPI / "crm-properties-v3.json").read_text())


def _schema(spec: dict[str, Any], name: str) -> dict[str, Any]:
    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]])
            return {k: resolve(v) for k, v in node.items()}
        return [resolve(v) for v in node] if isinstance(node, list) else node

    return resolve(copy.deepcopy(spec["components"]["schemas"][name]))


def _valid(spec: dict[str, Any], name: str, body: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}"
            for e in OAS30Validator(_schema(spec, name)).iter_errors(body)]


def setup(emulator: HubSpotEmulator, model_dir: Path, capsys: pytest.CaptureFixture) -> str:
    os.environ["HUBSPOT_TOKEN"] = TOKEN
    try:
        assert main(["hubspot", "setup", "--base-url", emulator.url,
                     "--model", str(model_dir)]) == 0
    finally:
        del os.environ["HUBSPOT_TOKEN"]
    return capsys.readouterr().out


def test_setup_describes_every_property_for_the_model_in_use(
        emulator: HubSpotEmulator, client: HubSpot, properties_openapi: dict[str, Any],
        capsys: pytest.CaptureFixture) -> None:
    out = setup(emulator, MODEL, capsys)
    assert "created: group ai_lead_scoring, " + ", ".join(AI_PROPERTIES) in out

    core = client.crm.properties.core_api
    read = {name: core.get_by_name("contacts", name) for name in AI_PROPERTIES}
    for name, prop in read.items():  # through the SDK, as HubSpot's own client reads them
        assert len(prop.description) > 40, name
        raw = core.get_by_name("contacts", name, _preload_content=False)
        assert not _valid(properties_openapi, "Property", json.loads(raw.data)), name

    rate = load(MODEL).metadata["metrics"]["positive_rate"]
    assert "percentage of the leads held back" in read["ai_lead_score"].description
    assert "Hot from 90, warm from 70, cold from 20" in read["ai_lead_score"].description
    assert "Calibrated" in read["ai_lead_probability"].description
    assert "Lifecycle stage reaches opportunity or customer" in (
        read["ai_lead_probability"].description)
    assert f"{100 * rate:.1f} % of past leads did" in read["ai_lead_probability"].description
    assert "model's own measure" in read["ai_lead_reasons"].description
    assert "never changes the score" in read["ai_lead_summary"].description
    tier = read["ai_lead_tier"]
    assert "Hot = 90-100 (top 10 % of past leads" in tier.description
    assert "Disqualified = below 20 (bottom 20 %" in tier.description
    options = sorted(tier.options, key=lambda option: option.display_order)
    assert [o.value for o in options] == [o.value for o in tier.options] == list(TIERS)
    assert [o.label for o in options] == ["Hot", "Warm", "Cold", "Disqualified"]
    assert options[0].description.startswith("Score 90-100: the top 10 % of past leads")
    assert options[3].description.startswith("Score below 20: the bottom 20 %")

    # What the SDK sends for the options is HubSpot's OptionInput shape.
    wire = client.crm.properties.core_api.api_client.sanitize_for_serialization(
        _options(ai_property_specs(score_guide(load(MODEL)))[2]))
    assert all(not _valid(properties_openapi, "OptionInput", option) for option in wire)


def test_setup_is_idempotent_and_follows_tier_changes(
        emulator: HubSpotEmulator, client: HubSpot, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    setup(emulator, MODEL, capsys)
    again = setup(emulator, MODEL, capsys)
    assert "updated:" not in again and "created:" not in again
    assert "kept: group ai_lead_scoring, " + ", ".join(AI_PROPERTIES) in again

    retiered = tmp_path / "model"
    shutil.copytree(MODEL, retiered)
    with (retiered / "features.toml").open("a") as handle:
        handle.write("\n[tiers]\nhot = 85\nwarm = 60\n")
    out = setup(emulator, retiered, capsys)
    assert "updated: ai_lead_score, ai_lead_tier\n" in out
    tier = client.crm.properties.core_api.get_by_name("contacts", "ai_lead_tier")
    assert "Hot = 85-100 (top 15 % of past leads" in tier.description
    assert "Warm = 60-84 (next 25 %" in tier.description
    assert tier.options[1].description.startswith("Score 60-84")


def test_the_score_function_refresh_updates_only_stale_properties_and_creates_none(
        emulator: HubSpotEmulator, client: HubSpot, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    model = load(MODEL)
    assert refresh_property_descriptions(model, TOKEN, emulator.url) == []  # none exist yet
    names = {p.name for p in client.crm.properties.core_api.get_all("contacts").results}
    assert not names & set(AI_PROPERTIES)

    setup(emulator, MODEL, capsys)
    assert refresh_property_descriptions(model, TOKEN, emulator.url) == []  # all current
    retiered = tmp_path / "model"
    shutil.copytree(MODEL, retiered)
    with (retiered / "features.toml").open("a") as handle:
        handle.write("\n[tiers]\ncold = 30\n")
    assert refresh_property_descriptions(load(retiered), TOKEN, emulator.url) == [
        "ai_lead_score", "ai_lead_tier"]
    tier = client.crm.properties.core_api.get_by_name("contacts", "ai_lead_tier")
    assert "Cold = 30-69" in tier.description


def test_an_unreachable_hubspot_does_not_stop_the_model_from_loading(
        emulator: HubSpotEmulator) -> None:
    from leadscore.observability import metrics

    metrics.clear_metrics()
    assert refresh_property_descriptions(load(MODEL), "pat-wrong-token", emulator.url) == []
    assert metrics.metric_set["PropertyDescriptionsNotRefreshed"]["Value"] == [1.0]
    metrics.clear_metrics()
