"""The learning loop end to end, black-box against `leadscore local up` over HTTP
(`leadscore_local.learning_drill`): leads created and scored through HubSpot's API, outcomes
set through HubSpot's API following a pattern the shipped model cannot know, the monthly retrain
run through the admin API at a simulated clock 100 days later, then new leads scored by the
promoted model — which ranks them better than the shipped one on that pattern. Then the
operator's commands: list, show, roll back, promote again."""

from __future__ import annotations

from pathlib import Path

import pytest
from hubspot.crm.contacts import SimplePublicObjectInputForCreate
from support import ROOT, settle, wait_for

from leadscore.cli import main
from leadscore_local.learning_drill import LearningDrill, leads

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def drill(stack):
    return LearningDrill(stack, ROOT).run()


@pytest.fixture(scope="module")
def stack_file(stack, tmp_path_factory) -> Path:
    import json

    path = tmp_path_factory.mktemp("stack") / "stack.json"
    path.write_text(json.dumps(stack.info) + "\n")
    return path


def test_the_retrain_promotes_a_challenger_that_learnt_this_portal(drill):
    decision = drill.decision
    assert decision["result"] == "promoted", decision["reason"]
    assert decision["champion_version"] == drill.shipped_version
    assert decision["challenger"]["auc"] > decision["champion"]["auc"]
    # Every lead got its outcome: conversions from the webhooks, the rest when the window
    # closed (read back from HubSpot's history at the retrain).
    data, outcomes = decision["data"], decision["outcomes"]
    assert data["labelled"] == drill.leads == data["train_rows"] + data["judge_rows"]
    assert data["positives"] == drill.converted
    assert outcomes["negative"] == drill.leads - drill.converted and outcomes["positive"] == 0


def test_new_leads_are_scored_by_the_promoted_model_and_ranked_better(drill):
    assert drill.new_versions == [drill.decision["challenger_version"]]
    assert drill.new_versions != [drill.shipped_version]
    # The same new leads, ranked by the model in use vs the shipped one, on this portal's
    # outcomes: the promoted model ranks them better.
    assert drill.auc_promoted > drill.auc_shipped, (drill.auc_promoted, drill.auc_shipped)


def test_the_operator_sees_every_candidate_and_why(drill, stack_file, capsys, tmp_path):
    version = drill.decision["challenger_version"]
    assert main(["model", "list", "--local-stack", str(stack_file)]) == 0
    listed = capsys.readouterr().out
    assert f"in use: {version}" in listed
    assert f"{drill.decision['run_id']}  promoted" in listed

    report = tmp_path / "report.html"
    assert main(["model", "show", version, "--local-stack", str(stack_file),
                 "--report", str(report)]) == 0
    shown = capsys.readouterr().out
    assert "gate (AUC tolerance 0.005, Brier tolerance 0.005): passed" in shown
    assert f"challenger {version}: AUC" in shown
    assert "Champion vs challenger" in report.read_text()


def score_one_new_lead(stack, hubspot, seed: int) -> str:
    [(properties, _)] = leads(1, seed, f"rollback{seed}")
    contact_id = hubspot.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties=properties)).id
    version = wait_for(lambda: hubspot.crm.contacts.basic_api.get_by_id(
        contact_id, properties=["ai_lead_model_version"]).properties.get(
        "ai_lead_model_version"), timeout=60)
    settle(stack)
    return version


def test_one_command_rolls_back_and_one_promotes_again(drill, stack, hubspot, aws, stack_file,
                                                       capsys):
    version = drill.decision["challenger_version"]
    ssm = aws("ssm")
    shadow = ssm.get_parameters_by_path(Path="/", Recursive=True)["Parameters"]
    [parameter] = [p["Name"] for p in shadow if p["Name"].endswith("/shadow-challenger")]
    ssm.put_parameter(Name=parameter, Value='{"version":"stale","prefix":"candidates/stale/"}',
                      Type="String", Overwrite=True)
    assert main(["model", "rollback", "--local-stack", str(stack_file)]) == 0
    out = capsys.readouterr().out
    assert "rollback to the built model: done" in out
    # A new champion by hand resets the shadow challenger, as a retrain's promotion does.
    assert "shadow challenger: none" in out
    assert ssm.get_parameter(Name=parameter)["Parameter"]["Value"] == "none"
    assert score_one_new_lead(stack, hubspot, 901) == drill.shipped_version

    assert main(["model", "promote", "--version", version,
                 "--local-stack", str(stack_file)]) == 0
    assert f"promote to {version}: done" in capsys.readouterr().out
    assert score_one_new_lead(stack, hubspot, 902) == version

    assert main(["model", "promote", "--version", "no-such-model",
                 "--local-stack", str(stack_file)]) == 1
    assert "no candidate 'no-such-model'" in capsys.readouterr().out
    assert score_one_new_lead(stack, hubspot, 903) == version  # unchanged
