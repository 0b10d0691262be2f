"""template.yaml's security and DPDP settings (issue 15): reserved concurrency, retained and
encrypted logs, backups as short as the erasure promise, the customer-managed key option,
secrets granted only where used, X-Ray without personal data, the grievance officer.

Each rule is written over every resource of its kind, so a function, table, queue or log group
added later is held to it too (the learning loop's snapshot table and scheduled jobs, say).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from leadscore_local.cfn_yaml import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
PARAMETERS: dict[str, Any] = TEMPLATE["Parameters"]
KEY_OPTION = {"Fn::If": ["UseDataKmsKey", {"Ref": "DataKmsKeyArn"}, {"Ref": "AWS::NoValue"}]}
# Lambda keeps this much of the account's concurrency unreserved (AWS Lambda docs, "Configuring
# reserved concurrency"); 1,000 is the default account quota in a region.
UNRESERVED_MINIMUM, DEFAULT_ACCOUNT_CONCURRENCY = 100, 1000
# The longest a request holds a container: cold init ~0.4 s (IngestFunction 420 ms,
# ScoreApiFunction 523 ms in `make bench`'s artifact step) plus the answer (ack p99 ~0.12 s).
SECONDS_PER_REQUEST = 0.5


def of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in RESOURCES.items() if v["Type"] == kind}


FUNCTIONS = of_type("AWS::Serverless::Function")


def has_schedule(function: dict[str, Any]) -> bool:
    return any(e["Type"] in ("Schedule", "ScheduleV2")
               for e in function["Properties"].get("Events", {}).values())


def referenced(node: Any) -> set[str]:
    """Logical ids a template fragment refers to (!Ref, !GetAtt, ${X} in !Sub)."""
    found: set[str] = set()
    if isinstance(node, dict):
        if "Ref" in node and isinstance(node["Ref"], str):
            found.add(node["Ref"])
        if "Fn::GetAtt" in node:
            found.add(node["Fn::GetAtt"][0])
        for value in node.values():
            found |= referenced(value)
    elif isinstance(node, list):
        for value in node:
            found |= referenced(value)
    return found


def parameter_default(value: Any) -> Any:
    return PARAMETERS[value["Ref"]]["Default"] if isinstance(value, dict) else value


# ------------------------------------------------------------------- reserved concurrency


@pytest.mark.parametrize("logical_id", sorted(k for k, v in FUNCTIONS.items() if has_schedule(v)))
def test_scheduled_jobs_run_one_at_a_time(logical_id):
    """Two overlapping runs of an erasing job would erase and write receipts twice; a retrain
    or monitor run twice would race on the model. Every scheduled function: exactly 1."""
    assert FUNCTIONS[logical_id]["Properties"].get("ReservedConcurrentExecutions") == 1


def test_the_daily_dpdp_jobs_are_among_them():
    scheduled = {k for k, v in FUNCTIONS.items() if has_schedule(v)}
    assert {"ConsentSweepFunction", "RetentionPurgeFunction"} <= scheduled


@pytest.mark.parametrize(("logical_id", "path"), [("IngestFunction", "/webhooks/hubspot"),
                                                  ("ScoreApiFunction", "/score")])
def test_api_functions_are_sized_from_the_api_throttle(logical_id, path):
    """Reserved = route rate limit x the longest a request holds a container: everything the
    API admits is served, and a flood cannot take more of the account than that."""
    [event] = [e["Properties"] for e in FUNCTIONS[logical_id]["Properties"]["Events"].values()]
    assert event["Path"] == path and event["ApiId"] == {"Ref": "HttpApi"}
    throttle = RESOURCES["HttpApi"]["Properties"]["DefaultRouteSettings"]
    reserved = FUNCTIONS[logical_id]["Properties"]["ReservedConcurrentExecutions"]
    parameter = PARAMETERS[reserved["Ref"]]
    assert parameter["Default"] == math.ceil(throttle["ThrottlingRateLimit"] * SECONDS_PER_REQUEST)
    # More than the burst bucket can never be in flight at once through the API.
    assert parameter["MaxValue"] == throttle["ThrottlingBurstLimit"]


def test_all_reservations_fit_the_default_account_quota():
    total = sum(parameter_default(f["Properties"].get("ReservedConcurrentExecutions", 0))
                for f in FUNCTIONS.values())
    assert total + UNRESERVED_MINIMUM <= DEFAULT_ACCOUNT_CONCURRENCY


# ------------------------------------------------------------------- logs and backups


@pytest.mark.parametrize("logical_id", sorted(of_type("AWS::Logs::LogGroup")))
def test_log_groups_outlive_the_stack_and_take_the_key(logical_id):
    group = RESOURCES[logical_id]
    assert group["DeletionPolicy"] == "Retain" and group["UpdateReplacePolicy"] == "Retain"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert group["Properties"]["KmsKeyId"] == KEY_OPTION


def test_every_function_logs_to_a_retained_group():
    for logical_id, function in FUNCTIONS.items():
        group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert RESOURCES[group]["DeletionPolicy"] == "Retain", logical_id


def test_logs_are_kept_a_year_by_default():
    assert PARAMETERS["LogRetentionDays"]["Default"] >= 365


def personal_data_tables() -> set[str]:
    """Tables keyed by HubSpot contact id hold data about a person."""
    return {k for k, v in of_type("AWS::DynamoDB::Table").items()
            if any(key["AttributeName"] == "contact_id" for key in v["Properties"]["KeySchema"])}


def test_personal_data_tables_are_found():
    assert {"LedgerTable", "DisclosuresTable"} <= personal_data_tables()


# Tables with nothing worth restoring: their items are counters that expire within a minute.
TRANSIENT_TABLES = {"HubSpotBudgetTable"}


def test_transient_tables_hold_no_personal_data():
    assert not TRANSIENT_TABLES & personal_data_tables()


@pytest.mark.parametrize("logical_id",
                         sorted(set(of_type("AWS::DynamoDB::Table")) - TRANSIENT_TABLES))
def test_backups_keep_erased_personal_data_no_longer_than_the_promise(logical_id):
    """PITR keeps a deleted item restorable for its recovery period (1-35 days, default 35).
    Tables of personal data use PersonalDataRecoveryDays (default 1: a withdrawal is honoured
    within a day); the others keep 35 days, stated in docs/dpdp.md."""
    pitr = RESOURCES[logical_id]["Properties"]["PointInTimeRecoverySpecification"]
    assert pitr["PointInTimeRecoveryEnabled"] is True
    if logical_id in personal_data_tables():
        assert pitr["RecoveryPeriodInDays"] == {"Ref": "PersonalDataRecoveryDays"}
    else:
        assert "RecoveryPeriodInDays" not in pitr
    parameter = PARAMETERS["PersonalDataRecoveryDays"]
    assert (parameter["Default"], parameter["MinValue"], parameter["MaxValue"]) == (1, 1, 35)


def test_personal_data_tables_go_with_the_stack():
    for logical_id in personal_data_tables():
        assert RESOURCES[logical_id]["DeletionPolicy"] == "Delete", logical_id


# ------------------------------------------------------------------- customer-managed key


@pytest.mark.parametrize("logical_id", sorted(of_type("AWS::DynamoDB::Table")))
def test_tables_take_the_key(logical_id):
    sse = RESOURCES[logical_id]["Properties"]["SSESpecification"]
    assert sse["SSEEnabled"] is True
    assert sse["SSEType"] == {"Fn::If": ["UseDataKmsKey", "KMS", {"Ref": "AWS::NoValue"}]}
    assert sse["KMSMasterKeyId"] == KEY_OPTION


@pytest.mark.parametrize("logical_id", sorted(of_type("AWS::SQS::Queue")))
def test_queues_take_the_key(logical_id):
    queue = RESOURCES[logical_id]["Properties"]
    assert queue["KmsMasterKeyId"] == KEY_OPTION
    # SQS refuses both at once: its own keys only without the customer's.
    assert queue["SqsManagedSseEnabled"] == {"Fn::If": ["UseDataKmsKey", False, True]}


def test_topics_carrying_contact_ids_take_the_key():
    assert RESOURCES["HotLeadsTopic"]["Properties"]["KmsMasterKeyId"] == {
        "Fn::If": ["UseDataKmsKey", {"Ref": "DataKmsKeyArn"}, "alias/aws/sns"]}


def test_the_key_parameter_accepts_only_a_key_arn_or_nothing():
    import re

    pattern = re.compile(PARAMETERS["DataKmsKeyArn"]["AllowedPattern"])
    assert pattern.fullmatch("")
    assert pattern.fullmatch(
        "arn:aws:kms:ap-south-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
    assert not pattern.fullmatch("alias/aws/dynamodb")
    assert not pattern.fullmatch("*")


DATA_RESOURCE_TYPES = {"AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::SNS::Topic"}


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_functions_using_queues_tables_or_topics_may_use_the_key(logical_id):
    policies = FUNCTIONS[logical_id]["Properties"].get("Policies", [])
    touches = {r for r in referenced(policies)
               if r in RESOURCES and RESOURCES[r]["Type"] in DATA_RESOURCE_TYPES}
    key_line = {"Fn::If": ["UseDataKmsKey", {"Ref": "DataKeyUsePolicy"},
                           {"Ref": "AWS::NoValue"}]}
    assert (key_line in policies) == bool(touches), (logical_id, touches)


def test_the_key_is_usable_only_through_the_stacks_services():
    policy = RESOURCES["DataKeyUsePolicy"]
    assert policy["Condition"] == "UseDataKmsKey"
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Resource"] == {"Ref": "DataKmsKeyArn"}
    assert set(statement["Action"]) <= {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey",
                                        "kms:DescribeKey"}
    services = statement["Condition"]["StringEquals"]["kms:ViaService"]
    assert [s["Fn::Sub"].split(".")[0] for s in services] == ["sqs", "dynamodb", "sns", "s3"]


# ------------------------------------------------------------------- secrets and traces


def test_the_llm_key_is_granted_only_with_the_anthropic_provider():
    grants = []
    for logical_id, function in FUNCTIONS.items():
        for policy in function["Properties"].get("Policies", []):
            if "LlmApiKeySecret" in referenced(policy):
                grants.append((logical_id, policy))
    assert [g[0] for g in grants] == ["EnrichFunction"]
    [(_, policy)] = grants
    condition, granted, otherwise = policy["Fn::If"]
    assert condition == "UseAnthropic" and otherwise == {"Ref": "AWS::NoValue"}
    assert granted == {"AWSSecretsManagerGetSecretValuePolicy": {
        "SecretArn": {"Ref": "LlmApiKeySecret"}}}
    assert TEMPLATE["Conditions"]["UseAnthropic"] == {
        "Fn::Equals": [{"Ref": "LlmProvider"}, "anthropic"]}


def test_xray_gets_no_responses_or_exceptions():
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
    assert variables["POWERTOOLS_TRACER_CAPTURE_ERROR"] == "false"


# ------------------------------------------------------------------- DPDP


def test_grievance_officer_parameters_reach_an_output():
    for name in ("GrievanceOfficerName", "GrievanceOfficerEmail", "GrievanceOfficerPhone"):
        assert PARAMETERS[name]["Default"] == ""
        assert name in TEMPLATE["Outputs"]["GrievanceContact"]["Value"]["Fn::Sub"]


def test_disclosures_are_written_by_enrichment_and_erased_with_the_ledger():
    def actions(logical_id: str) -> set[str]:
        found = set()
        for policy in FUNCTIONS[logical_id]["Properties"]["Policies"]:
            for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                if statement["Resource"] == {"Fn::GetAtt": ["DisclosuresTable", "Arn"]}:
                    found |= set(statement["Action"] if isinstance(statement["Action"], list)
                                 else [statement["Action"]])
        return found

    assert actions("EnrichFunction") == {"dynamodb:UpdateItem"}
    for eraser in ("ScoreFunction", "ConsentSweepFunction", "RetentionPurgeFunction"):
        assert actions(eraser) == {"dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"}
    for other in ("IngestFunction", "ScoreApiFunction"):
        assert actions(other) == set()


# ------------------------------------------------------------------- figures


def statements(policy: Any) -> tuple[int, int]:
    """(statements always granted, statements granted under a condition) of one `Policies`
    entry. Each SAM policy template this template uses expands to one statement
    (samtranslator's policy_templates.json); DataKeyUsePolicy has one."""
    if "Statement" in policy:
        return len(policy["Statement"]), 0
    if "Fn::If" in policy:
        granted = policy["Fn::If"][1]
        return 0, (1 if "Ref" in granted else sum(statements(granted)))
    return 1, 0


ENCRYPTED_TYPES = {"AWS::DynamoDB::Table": "SSESpecification", "AWS::SQS::Queue":
                   "KmsMasterKeyId", "AWS::SNS::Topic": "KmsMasterKeyId",
                   "AWS::Logs::LogGroup": "KmsKeyId"}
AWS_KEY = {"AWS::DynamoDB::Table": "AWS owned key", "AWS::SQS::Queue": "SQS-managed (SSE-SQS)",
           "AWS::SNS::Topic": "alias/aws/sns", "AWS::Logs::LogGroup": "CloudWatch Logs' own"}


def key_of(resource: dict[str, Any]) -> str:
    setting = resource["Properties"][ENCRYPTED_TYPES[resource["Type"]]]
    setting = setting.get("KMSMasterKeyId", setting) if isinstance(setting, dict) else setting
    if isinstance(setting, dict) and "Fn::If" in setting:
        _, chosen, otherwise = setting["Fn::If"]
        otherwise = AWS_KEY[resource["Type"]] if otherwise == {"Ref": "AWS::NoValue"} else otherwise
        return f"{chosen['Ref']} if set, else {otherwise}"
    return f"{setting['Ref']} (its own key)" if isinstance(setting, dict) else str(setting)


def test_figures_iam_statements_and_keys(capsys):
    """The figures of the issue: IAM statements per function (beside the two managed policies
    SAM attaches to every function: basic execution and X-Ray writes) and which key encrypts
    each store."""
    rows = []
    for logical_id, function in sorted(FUNCTIONS.items()):
        always = conditional = 0
        for policy in function["Properties"].get("Policies", []):
            a, c = statements(policy)
            always, conditional = always + a, conditional + c
        assert always >= 1, logical_id
        rows.append(f"  {logical_id}: {always} statements, +{conditional} conditional")
    keys = {logical_id: key_of(resource) for logical_id, resource in sorted(RESOURCES.items())
            if resource["Type"] in ENCRYPTED_TYPES}
    assert sum("DataKmsKeyArn if set" in key for key in keys.values()) == len(keys) - 1
    assert keys["AlarmTopic"] == "AlarmTopicKey (its own key)"  # alarms carry no personal data
    with capsys.disabled():
        print("\nIAM statements per function:", *rows, "encryption at rest:",
              *(f"  {k}: {v}" for k, v in keys.items()), sep="\n")


def test_every_function_reading_hubspot_takes_the_apps_request_budget():
    """HubSpot's limit is per app: a function with the token and no budget slot would spend
    requests the others cannot see (leadscore.hubspot.shared_budget)."""
    for logical_id, function in FUNCTIONS.items():
        policies = json.dumps(function["Properties"].get("Policies", []))
        if "HubSpotTokenSecret" not in policies:
            continue
        assert '"Sid": "HubSpotRequestBudget"' in policies, logical_id
