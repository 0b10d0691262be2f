"""template.yaml, samconfig.toml and the layer build inputs: lint-clean and shaped as designed.

The logical ids, env var names and settings asserted here are the contracts in
docs/CONTRACTS.md that the handlers and the local stack code against.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leadscore_local.cfn_yaml import load_template, loads_template

ROOT = Path(__file__).resolve().parents[2]

FUNCTIONS = {
    "IngestFunction": "ingest",
    "ScoreFunction": "score",
    "EnrichFunction": "enrich",
    "ScoreApiFunction": "score_api",
    "ConsentSweepFunction": "consent_sweep",
    "RetentionPurgeFunction": "retention_purge",
    "SlackNotifyFunction": "slack_notify",
    "ModelRetrainFunction": "model_retrain",
    "ModelMonitorFunction": "model_monitor",
}
MODEL_FUNCTIONS = {"ScoreFunction", "ScoreApiFunction", "ModelRetrainFunction",
                   "ModelMonitorFunction"}
# The model functions' layers: the runtime, then the promoted model or the built one.
MODEL_LAYERS = ["SharedLayer", "ModelRuntimeLayer",
                "ModelLayerArn if UsePromotedModel else ModelLayer"]
GLOBAL_ENV = {
    "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL", "STAGE",
    "HUBSPOT_BASE_URL", "HUBSPOT_TOKEN_SECRET", "CONSENT_PURPOSES_PROPERTY",
    "CONSENT_UPDATED_AT_PROPERTY", "LEDGER_TABLE", "RETENTION_DAYS",
}  # fmt: skip
FUNCTION_ENV = {
    "IngestFunction": {
        "HUBSPOT_CLIENT_SECRET_SECRET", "WEBHOOK_PUBLIC_URL", "SCORE_QUEUE_URL",
        "IDEMPOTENCY_TABLE",
    },
    "ScoreFunction": {
        "MODEL_DIR", "ENRICH_QUEUE_URL", "HOT_LEADS_TOPIC_ARN", "ENRICH_TIERS",
        "ERASURE_RECEIPTS_TABLE", "ERASURE_RECEIPT_KEY_SECRET", "AUDIT_RETENTION_DAYS",
        "FEATURE_SNAPSHOT_TABLE", "OUTCOME_WINDOW_DAYS", "TRAINING_CONSENT_PURPOSE",
    },
    "EnrichFunction": {
        "LLM_PROVIDER", "LLM_API_KEY_SECRET", "ANTHROPIC_BASE_URL", "BEDROCK_REGION", "LLM_MODEL",
        "LLM_ESCALATION_MODEL", "LLM_PRICES", "ENRICHMENT_PROMPT_PARAMETER",
        "QUALIFICATION_CRITERIA_PARAMETER", "ENRICH_BUDGET_TABLE", "LLM_DAILY_BUDGET_USD",
        "ENRICH_QUEUE_URL", "ENRICH_DLQ_URL", "ENRICH_QUEUE_MAX_RECEIVE_COUNT",
        "IDEMPOTENCY_TABLE",
    },
    "ScoreApiFunction": {"MODEL_DIR", "HUBSPOT_CLIENT_SECRET_SECRET", "SCORE_API_PUBLIC_URL"},
    "ConsentSweepFunction": {
        "ERASURE_RECEIPTS_TABLE", "ERASURE_RECEIPT_KEY_SECRET", "AUDIT_RETENTION_DAYS",
        "CONSENT_SWEEP_CURSOR_PARAMETER", "FEATURE_SNAPSHOT_TABLE",
    },
    "RetentionPurgeFunction": {
        "ERASURE_RECEIPTS_TABLE", "ERASURE_RECEIPT_KEY_SECRET", "AUDIT_RETENTION_DAYS",
        "PURGE_INACTIVE_CONTACTS", "FEATURE_SNAPSHOT_TABLE",
    },
    "ModelRetrainFunction": {
        "MODEL_DIR", "FEATURE_SNAPSHOT_TABLE", "MODEL_ARTIFACTS_BUCKET", "MODEL_LAYER_NAME",
        "STACK_NAME", "OUTCOME_WINDOW_DAYS", "TRAINING_CONSENT_PURPOSE", "RETRAIN_MIN_POSITIVES",
        "RETRAIN_MIN_NEGATIVES", "PROMOTION_AUC_TOLERANCE", "PROMOTION_BRIER_TOLERANCE",
        "MODEL_PROMOTION", "ERASURE_RECEIPTS_TABLE", "ERASURE_RECEIPT_KEY_SECRET",
    },
    "SlackNotifyFunction": {
        "SLACK_WEBHOOK_URL_SECRET", "SLACK_ALERT_QUEUE_URL", "SLACK_ALERT_DLQ_URL",
        "SLACK_ALERT_QUEUE_MAX_RECEIVE_COUNT", "IDEMPOTENCY_TABLE", "ENRICH_TIERS",
        "LLM_PROVIDER", "SLACK_SUMMARY_WAIT_SECONDS", "HUBSPOT_APP_URL", "HUBSPOT_PORTAL_ID",
    },
    "ModelMonitorFunction": {
        "MODEL_DIR", "FEATURE_SNAPSHOT_TABLE", "OUTCOME_WINDOW_DAYS", "MONITOR_MIN_LEADS",
        "MONITOR_MIN_OUTCOMES",
    },
}  # fmt: skip
QUEUES = {
    "ScoreQueue": ("ScoreDLQ", "ScoreFunction"),
    "EnrichQueue": ("EnrichDLQ", "EnrichFunction"),
    "SlackAlertQueue": ("SlackAlertDLQ", "SlackNotifyFunction"),
}
FOURTEEN_DAYS = 14 * 24 * 3600


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


def function_setting(template: dict[str, Any], logical_id: str, name: str) -> Any:
    """A function property as SAM resolves it: its own value, else the Globals value."""
    properties = template["Resources"][logical_id]["Properties"]
    return properties.get(name, template["Globals"]["Function"].get(name))


def function_layers(template: dict[str, Any], logical_id: str) -> list[str]:
    # SAM concatenates list-valued Globals with the function's own list.
    refs = template["Globals"]["Function"].get("Layers", []) + template["Resources"][logical_id][
        "Properties"
    ].get("Layers", [])
    return [ref["Ref"] if "Ref" in ref else
            f"{ref['Fn::If'][1]['Ref']} if {ref['Fn::If'][0]} else {ref['Fn::If'][2]['Ref']}"
            for ref in refs]


def function_env(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    properties = template["Resources"][logical_id]["Properties"]
    return {
        **template["Globals"]["Function"]["Environment"]["Variables"],
        **properties.get("Environment", {}).get("Variables", {}),
    }


def events_of(resources: dict[str, Any], logical_id: str, kind: str) -> list[dict[str, Any]]:
    events = resources[logical_id]["Properties"].get("Events", {})
    return [event["Properties"] for event in events.values() if event["Type"] == kind]


def statements(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM-style policy statement anywhere in the template, with where it was found."""
    if isinstance(node, dict):
        if "Effect" in node and ("Action" in node or "NotAction" in node):
            yield path, node
        for key, value in node.items():
            yield from statements(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from statements(value, f"{path}/{index}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ----------------------------------------------------------------------------- lint


def test_cfn_lint_reports_nothing() -> None:
    from cfnlint.api import lint_file

    matches = lint_file(ROOT / "template.yaml")
    assert [str(match) for match in matches] == []


def test_loader_reads_short_form_tags() -> None:
    document = loads_template(
        "A: !Ref X\nB: !GetAtt Q.Arn\nC: !Sub 'a-${X}'\nD: !If [C1, !Ref Y, !Ref AWS::NoValue]\n"
        "E: !Condition C2\nF: !GetAtt [Q, QueueName]\nVersion: 2012-10-17\n"
    )
    assert document == {
        "A": {"Ref": "X"},
        "B": {"Fn::GetAtt": ["Q", "Arn"]},
        "C": {"Fn::Sub": "a-${X}"},
        "D": {"Fn::If": ["C1", {"Ref": "Y"}, {"Ref": "AWS::NoValue"}]},
        "E": {"Condition": "C2"},
        "F": {"Fn::GetAtt": ["Q", "QueueName"]},
        "Version": "2012-10-17",
    }


# ----------------------------------------------------------------------------- functions


def test_transform_and_function_globals(template: dict[str, Any]) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    globals_function = template["Globals"]["Function"]
    assert globals_function["Tracing"] == "Active"
    assert set(globals_function["Environment"]["Variables"]) >= GLOBAL_ENV
    variables = globals_function["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == "leadscore"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "LeadScore"
    assert variables["HUBSPOT_TOKEN_SECRET"] == {"Ref": "HubSpotTokenSecret"}
    assert variables["LEDGER_TABLE"] == {"Ref": "LedgerTable"}


@pytest.mark.parametrize(("logical_id", "directory"), FUNCTIONS.items())
def test_function_shape(template: dict[str, Any], logical_id: str, directory: str) -> None:
    resource = template["Resources"][logical_id]
    assert resource["Type"] == "AWS::Serverless::Function"
    assert resource["Properties"]["CodeUri"].rstrip("/") == f"functions/{directory}"
    assert function_setting(template, logical_id, "Runtime") == "python3.12"
    assert function_setting(template, logical_id, "Architectures") == ["x86_64"]
    assert function_setting(template, logical_id, "Handler") == "app.lambda_handler"
    assert FUNCTION_ENV[logical_id] <= set(function_env(template, logical_id))
    expected_layers = MODEL_LAYERS if logical_id in MODEL_FUNCTIONS else ["SharedLayer"]
    assert function_layers(template, logical_id) == expected_layers
    if logical_id in MODEL_FUNCTIONS:
        assert function_env(template, logical_id)["MODEL_DIR"] == "/opt/model"
    # All dependencies come from the layers.
    requirements = ROOT / "functions" / directory / "requirements.txt"
    pinned = [
        line for line in requirements.read_text().splitlines() if line.strip() and line[0] != "#"
    ]
    assert pinned == []


def test_only_design_functions_exist(resources: dict[str, Any]) -> None:
    declared = {k for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}
    assert declared == set(FUNCTIONS)


def test_http_routes(resources: dict[str, Any]) -> None:
    assert resources["HttpApi"]["Type"] == "AWS::Serverless::HttpApi"
    routes = {
        (event["Method"], event["Path"], logical_id)
        for logical_id in FUNCTIONS
        for event in events_of(resources, logical_id, "HttpApi")
    }
    assert routes == {
        ("POST", "/webhooks/hubspot", "IngestFunction"),
        ("POST", "/score", "ScoreApiFunction"),
    }
    for logical_id in ("IngestFunction", "ScoreApiFunction"):
        assert all(
            e["ApiId"] == {"Ref": "HttpApi"} for e in events_of(resources, logical_id, "HttpApi")
        )


@pytest.mark.parametrize("logical_id", ["ConsentSweepFunction", "RetentionPurgeFunction",
                                        "ModelMonitorFunction"])
def test_daily_schedules(resources: dict[str, Any], logical_id: str) -> None:
    [schedule] = events_of(resources, logical_id, "Schedule")
    expression = schedule["Schedule"]
    daily_cron = re.fullmatch(r"cron\(\d+ \d+ \* \* \? \*\)", expression)
    assert expression == "rate(1 day)" or daily_cron, expression


# ----------------------------------------------------------------------------- queues


@pytest.mark.parametrize(("queue_id", "consumer"), [(q, c) for q, (_, c) in QUEUES.items()])
def test_sqs_event_sources_report_partial_failures(
    template: dict[str, Any], queue_id: str, consumer: str
) -> None:
    [source] = events_of(template["Resources"], consumer, "SQS")
    assert source["Queue"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["ScalingConfig"]["MaximumConcurrency"] >= 2
    expected_batch = {"ScoreFunction": 100, "EnrichFunction": 100,
                      "SlackNotifyFunction": 10}[consumer]
    assert source["BatchSize"] == expected_batch
    if source["BatchSize"] > 10:  # required by SQS for batches above 10
        assert source["MaximumBatchingWindowInSeconds"] >= 1


@pytest.mark.parametrize(
    ("queue_id", "dlq_id", "consumer"), [(q, d, c) for q, (d, c) in QUEUES.items()]
)
def test_queues_have_dlqs_and_safe_visibility(
    template: dict[str, Any], queue_id: str, dlq_id: str, consumer: str
) -> None:
    resources = template["Resources"]
    queue = resources[queue_id]["Properties"]
    redrive = queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq_id, "Arn"]}
    assert 1 <= redrive["maxReceiveCount"] <= 10
    # SQS-managed SSE, or the customer-managed key (tests/unit/test_security_template.py)
    assert queue["SqsManagedSseEnabled"] == {"Fn::If": ["UseDataKmsKey", False, True]}
    # AWS: visibility timeout >= 6 x the function timeout, so retries do not overlap.
    assert queue["VisibilityTimeout"] >= 6 * function_setting(template, consumer, "Timeout")
    dlq = resources[dlq_id]["Properties"]
    assert dlq["MessageRetentionPeriod"] == FOURTEEN_DAYS
    assert dlq["SqsManagedSseEnabled"] == {"Fn::If": ["UseDataKmsKey", False, True]}
    alarms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert any(
        a.get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and a["Dimensions"][0]["Value"] == {"Fn::GetAtt": [dlq_id, "QueueName"]}
        and a["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        for a in alarms
    ), f"no alarm on {dlq_id}"


# ----------------------------------------------------------------------------- data stores


@pytest.mark.parametrize(
    ("table_id", "key", "ttl"),
    [("LedgerTable", "contact_id", "expires_at"), ("IdempotencyTable", "id", "expiration"),
     ("ErasureReceiptsTable", "subject", "expires_at"), ("EnrichBudgetTable", "day", "expires_at"),
     ("DisclosuresTable", "contact_id", "expires_at"),
     ("FeatureSnapshotTable", "contact_id", "expires_at")],
)
def test_tables_encrypted_recoverable_expiring(
    resources: dict[str, Any], table_id: str, key: str, ttl: str
) -> None:
    table = resources[table_id]
    assert table["Type"] == "AWS::DynamoDB::Table"
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["KeySchema"][0] == {"AttributeName": key, "KeyType": "HASH"}
    assert {"AttributeName": key, "AttributeType": "S"} in properties["AttributeDefinitions"]
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert properties["TimeToLiveSpecification"] == {"AttributeName": ttl, "Enabled": True}


@pytest.mark.parametrize(
    "secret_id",
    ["HubSpotTokenSecret", "HubSpotClientSecret", "LlmApiKeySecret", "ErasureReceiptKeySecret",
     "SlackWebhookUrlSecret"],
)
def test_secrets_hold_no_value_in_the_template(resources: dict[str, Any], secret_id: str) -> None:
    secret = resources[secret_id]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert "SecretString" not in secret["Properties"]
    assert "GenerateSecretString" in secret["Properties"]


def test_hot_leads_reach_the_slack_queue_from_their_topic_only(
        resources: dict[str, Any]) -> None:
    subscription = resources["HotLeadsToSlackSubscription"]["Properties"]
    assert subscription == {"TopicArn": {"Ref": "HotLeadsTopic"}, "Protocol": "sqs",
                            "Endpoint": {"Fn::GetAtt": ["SlackAlertQueue", "Arn"]},
                            "RawMessageDelivery": True}
    policy = resources["SlackAlertQueuePolicy"]["Properties"]
    allow, deny = policy["PolicyDocument"]["Statement"]
    assert allow["Principal"] == {"Service": "sns.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "HotLeadsTopic"}}}
    assert deny["Effect"] == "Deny" and deny["Condition"]["Bool"]["aws:SecureTransport"] == (
        "false")
    env = resources["SlackNotifyFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SLACK_ALERT_QUEUE_MAX_RECEIVE_COUNT"] == (
        resources["SlackAlertQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"])
    # Same settings as the functions that decide whether an LLM summary is coming.
    assert env["ENRICH_TIERS"] == resources["ScoreFunction"]["Properties"]["Environment"][
        "Variables"]["ENRICH_TIERS"]
    assert env["LLM_PROVIDER"] == resources["EnrichFunction"]["Properties"]["Environment"][
        "Variables"]["LLM_PROVIDER"]


def test_topics_encrypted(resources: dict[str, Any]) -> None:
    assert resources["HotLeadsTopic"]["Properties"]["KmsMasterKeyId"] == {
        "Fn::If": ["UseDataKmsKey", {"Ref": "DataKmsKeyArn"}, "alias/aws/sns"]}
    # CloudWatch alarms cannot use alias/aws/sns: the alarm topic has its own key.
    assert resources["AlarmTopic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}


# ----------------------------------------------------------------------------- security


def test_no_wildcard_actions_or_resources(template: dict[str, Any]) -> None:
    found = list(statements(template["Resources"]))
    assert len(found) >= 4  # the walk does find the inline statements
    for path, statement in found:
        assert "*" not in as_list(statement.get("Action", [])), path
        assert "NotAction" not in statement, path
        if statement["Effect"] == "Allow" and "*" in as_list(statement.get("Resource", [])):
            # Only key policies, whose Resource must be "*" (it means the key itself).
            resource_id = path.split("/")[1]
            assert template["Resources"][resource_id]["Type"] == "AWS::KMS::Key", path


def test_function_policies_are_scoped_templates_or_statements(resources: dict[str, Any]) -> None:
    """SAM policy templates, each bound to one resource of this stack; no managed policies."""
    scoped_templates = {
        "AWSSecretsManagerGetSecretValuePolicy", "DynamoDBCrudPolicy", "SQSSendMessagePolicy",
        "SNSPublishMessagePolicy",
    }  # fmt: skip
    for logical_id in FUNCTIONS:
        for policy in resources[logical_id]["Properties"].get("Policies", []):
            assert isinstance(policy, dict), f"{logical_id}: managed policy {policy!r}"
            if "Fn::If" in policy:  # conditional statement (Bedrock), checked by the walk above
                policy = policy["Fn::If"][1]
            [(name, arguments)] = policy.items()
            if name == "Ref":  # a managed policy of this stack, its statements walked above
                assert resources[arguments]["Type"] == "AWS::IAM::ManagedPolicy", logical_id
                continue
            if name == "Statement":
                continue
            assert name in scoped_templates, f"{logical_id}: {name}"
            for value in arguments.values():
                assert isinstance(value, dict) and {"Ref", "Fn::GetAtt"} & set(value), (
                    f"{logical_id}: {name} is not bound to a stack resource: {value!r}"
                )


def test_enrich_reads_its_prompt_parameters_and_budget_counter_only(
    resources: dict[str, Any],
) -> None:
    function = resources["EnrichFunction"]["Properties"]
    env = function["Environment"]["Variables"]
    for parameter_id in ("EnrichmentPromptParameter", "QualificationCriteriaParameter"):
        parameter = resources[parameter_id]["Properties"]
        assert parameter["Value"] == "default"  # the versioned text shipped in the package
    assert env["ENRICHMENT_PROMPT_PARAMETER"] == {"Ref": "EnrichmentPromptParameter"}
    assert env["QUALIFICATION_CRITERIA_PARAMETER"] == {"Ref": "QualificationCriteriaParameter"}
    assert env["ENRICH_BUDGET_TABLE"] == {"Ref": "EnrichBudgetTable"}
    assert env["ENRICH_QUEUE_MAX_RECEIVE_COUNT"] == (
        resources["EnrichQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"])
    found = {s["Sid"]: s for _, s in statements(resources["EnrichFunction"]) if "Sid" in s}
    assert as_list(found["ReadEnrichmentPrompt"]["Action"]) == ["ssm:GetParameter"]
    assert len(as_list(found["ReadEnrichmentPrompt"]["Resource"])) == 2
    assert set(found["DailyBudgetCounter"]["Action"]) == {"dynamodb:GetItem",
                                                          "dynamodb:UpdateItem"}
    assert found["DailyBudgetCounter"]["Resource"] == {"Fn::GetAtt": ["EnrichBudgetTable",
                                                                      "Arn"]}
    # The ledger is not the enrich function's business.
    assert "LedgerTable" not in str(function["Policies"])


def test_bedrock_permission_scoped_to_anthropic_models(resources: dict[str, Any]) -> None:
    found = [s for _, s in statements(resources["EnrichFunction"]) if "bedrock" in str(s["Action"])]
    assert found, "EnrichFunction has no Bedrock statement"
    for statement in found:
        assert {a.split(":")[1] for a in as_list(statement["Action"])} <= {
            "InvokeModel", "InvokeModelWithResponseStream",
        }  # fmt: skip
        for resource in as_list(statement["Resource"]):
            arn = str(resource)
            assert (
                "foundation-model/anthropic." in arn or "inference-profile/apac.anthropic." in arn
            )
            assert "global." not in arn
            if ":bedrock:*:" in arn:  # any region only behind the in-region APAC profiles
                profile = statement["Condition"]["StringLike"]["bedrock:InferenceProfileArn"]
                assert ":bedrock:${BedrockRegion}:" in str(profile)
                assert "inference-profile/apac.anthropic." in str(profile)
            else:
                assert ":bedrock:${BedrockRegion}:" in arn


def test_region_guard_rule(template: dict[str, Any]) -> None:
    assert template["Parameters"]["AllowedRegions"]["Type"] == "CommaDelimitedList"
    assert template["Parameters"]["AllowedRegions"]["Default"] == "ap-south-1"
    guards = [
        assertion["Assert"]
        for rule in template["Rules"].values()
        for assertion in rule["Assertions"]
        if "RuleCondition" not in rule
    ]
    assert {"Fn::Contains": [{"Ref": "AllowedRegions"}, {"Ref": "AWS::Region"}]} in guards


def test_parameter_defaults(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    assert parameters["RetentionDays"]["Default"] == 180
    assert parameters["LlmProvider"]["Default"] == "off"
    assert set(parameters["LlmProvider"]["AllowedValues"]) == {"anthropic", "bedrock", "off"}
    assert parameters["HubSpotBaseUrl"]["Default"] == "https://api.hubapi.com"
    assert parameters["WebhookPublicUrl"]["Default"] == ""


def test_outputs(template: dict[str, Any]) -> None:
    assert {
        "WebhookUrl", "ScoreApiUrl", "ScoreQueueUrl", "EnrichQueueUrl", "LedgerTableName",
        "IdempotencyTableName", "HubSpotTokenSecretArn", "HubSpotClientSecretArn",
        "LlmApiKeySecretArn", "SlackWebhookUrlSecretArn", "SlackAlertDLQUrl",
    } <= set(template["Outputs"])  # fmt: skip
    assert template["Outputs"]["WebhookUrl"]["Value"]["Fn::Sub"].endswith("/webhooks/hubspot")


# ----------------------------------------------------------------------------- layers


@pytest.mark.parametrize("layer_id", ["SharedLayer", "ModelRuntimeLayer", "ModelLayer"])
def test_layers_build_with_their_makefiles(resources: dict[str, Any], layer_id: str) -> None:
    layer = resources[layer_id]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["x86_64"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    makefile = ROOT / layer["Properties"]["ContentUri"] / "Makefile"
    assert re.search(rf"^build-{layer_id}:", makefile.read_text(), re.MULTILINE)


@pytest.mark.parametrize(
    "lock",
    [
        "layers/shared/requirements.txt",
        "layers/model/requirements.txt",
        "layers/model/libgomp-requirements.txt",
    ],
)
def test_layer_locks_are_pinned_and_hashed(lock: str) -> None:
    text = (ROOT / lock).read_text()
    entries = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\\n\s+--hash=sha256:[0-9a-f]{64}", text, re.M)
    requirement_lines = [line for line in text.splitlines() if line and line[0] not in "# "]
    assert entries and len(entries) == len(requirement_lines)
    names = {name.lower() for name, _ in entries}
    # The runtime provides boto3 & co.; shipping them would shadow its versions.
    assert not names & {"boto3", "botocore", "s3transfer"}
    assert not names & {"moto", "pandas", "scikit-learn", "pytest"} or lock.endswith(
        "libgomp-requirements.txt"
    )


def test_model_layer_pins_match_training_environment() -> None:
    """The layer must run the LightGBM/numpy the model was trained and tested with."""
    from importlib.metadata import version

    text = (ROOT / "layers/model/requirements.txt").read_text()
    for project in ("lightgbm", "numpy"):
        assert f"{project}=={version(project)} " in text, f"{project} differs from .venv"


def test_shared_layer_excludes_emulators() -> None:
    makefile = (ROOT / "layers/shared/Makefile").read_text()
    assert "shared/leadscore" in makefile
    assert "leadscore_local" not in re.sub(r"#.*", "", makefile)


# ----------------------------------------------------------------------------- samconfig


def test_samconfig_deploys_to_mumbai() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())["default"]
    deploy = config["deploy"]["parameters"]
    assert deploy["region"] == "ap-south-1"
    assert config["global"]["parameters"]["stack_name"] == "leadscore"
    assert "CAPABILITY_IAM" in deploy["capabilities"]
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is True
    assert config["build"]["parameters"]["cached"] is False


def test_no_function_can_be_given_a_simulated_clock(template: dict[str, Any]) -> None:
    """The local stack's simulated-clock switch must never reach a deployed function: with it,
    whoever may invoke the retention purge could set "now" years ahead and erase everything."""
    from leadscore.timestamps import SIMULATED_CLOCK_SETTING

    assert SIMULATED_CLOCK_SETTING not in (ROOT / "template.yaml").read_text()
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            assert SIMULATED_CLOCK_SETTING not in function_env(template, logical_id)


# ----------------------------------------------------------------------------- learning loop


def test_the_model_comes_from_a_layer_the_stack_names(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["ModelLayerArn"]
    assert parameter["Default"] == ""  # the built ModelLayer until a promotion sets it
    assert re.fullmatch(parameter["AllowedPattern"],
                        "arn:aws:lambda:ap-south-1:123456789012:layer:leadscore-model-dev:3")
    assert not re.fullmatch(parameter["AllowedPattern"], "arn:aws:s3:::elsewhere")
    assert template["Conditions"]["UsePromotedModel"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ModelLayerArn"}, ""]}]}
    layer = template["Resources"]["ModelLayer"]["Properties"]
    runtime = template["Resources"]["ModelRuntimeLayer"]["Properties"]
    assert layer["ContentUri"] == runtime["ContentUri"] == "layers/model/"


def test_artifacts_bucket_is_private_encrypted_versioned_tls_only(resources) -> None:
    bucket = resources["ModelArtifactsBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    [deny] = resources["ModelArtifactsBucketTlsOnlyPolicy"]["Properties"]["PolicyDocument"][
        "Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}}


def test_promotion_may_change_this_stacks_model_layer_only(resources) -> None:
    policy = resources["ModelPromotionPolicy"]["Properties"]
    assert policy["Roles"] == [{"Ref": "ModelRetrainFunctionRole"}]
    found = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert found["PublishModelLayerVersions"]["Resource"]["Fn::Sub"].endswith(
        ":layer:leadscore-model-${Stage}")
    assert found["ChangeThisStacksModelLayer"]["Resource"] == {"Ref": "AWS::StackId"}
    assert "cloudformation:UpdateStack" not in found["ChangeThisStacksModelLayer"]["Action"]
    assert found["ThroughTheSamTransform"]["Resource"]["Fn::Sub"].endswith(
        ":aws:transform/Serverless-2016-10-31")
    updated = {r["Fn::GetAtt"][0] for r in found["UpdateTheModelFunctions"]["Resource"]}
    assert updated == MODEL_FUNCTIONS
    assert "lambda:UpdateFunctionCode" not in found["UpdateTheModelFunctions"]["Action"]
    passed = {r["Fn::GetAtt"][0] for r in found["KeepTheirRoles"]["Resource"]}
    assert passed == {f"{name}Role" for name in MODEL_FUNCTIONS}
    assert found["KeepTheirRoles"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}


def test_the_retrain_runs_monthly_one_at_a_time(resources) -> None:
    properties = resources["ModelRetrainFunction"]["Properties"]
    [schedule] = events_of(resources, "ModelRetrainFunction", "Schedule")
    assert re.fullmatch(r"cron\(\d+ \d+ 1 \* \? \*\)", schedule["Schedule"])
    assert properties["ReservedConcurrentExecutions"] == 1
    assert properties["Timeout"] == 900


def test_no_function_can_be_pointed_at_a_local_promotion_endpoint(template) -> None:
    from leadscore.learning.settings import LOCAL_PROMOTION_SETTING

    assert LOCAL_PROMOTION_SETTING not in (ROOT / "template.yaml").read_text()
