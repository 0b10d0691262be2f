"""Creates the template's AWS resources in moto's server and resolves references to them.

Only the resource types the functions talk to at run time are created (queues, tables,
secrets, parameters, topics and their queue subscriptions, buckets); IAM, alarms, layers and
the HTTP API have no local counterpart.
"""

from __future__ import annotations

import json
import re
import secrets as secrets_module
from dataclasses import dataclass, field
from typing import Any

import boto3

from leadscore_local.faults import STACK_CLIENT

REGION = "ap-south-1"
ACCOUNT = "123456789012"  # moto's default account


def local_client(service: str, endpoint_url: str):
    """A boto3 client for moto's server; moto accepts any credentials. Marked as the stack's
    own, so injected AWS faults (faults.py) never hit the plumbing."""
    client = boto3.session.Session(
        region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local"
    ).client(service, endpoint_url=endpoint_url)
    setattr(client, STACK_CLIENT, True)
    return client


@dataclass
class Provisioned:
    """Logical id → the values !Ref and !GetAtt give for it."""

    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)
    queue_urls: dict[str, str] = field(default_factory=dict)  # logical id → URL
    dlq_of: dict[str, str] = field(default_factory=dict)  # queue → its DLQ (logical ids)

    def to_json(self) -> dict[str, dict[str, str]]:
        """`{logical id: {"Ref": value, attribute: value}}`, the `resources` of the stack's
        JSON line (tools outside the stack resolve the template's references with it)."""
        out: dict[str, dict[str, str]] = {name: {"Ref": ref} for name, ref in self.refs.items()}
        for (name, attribute), value in self.attributes.items():
            out.setdefault(name, {})[attribute] = value
        return out

    @classmethod
    def from_json(cls, resources: dict[str, dict[str, str]]) -> Provisioned:
        return cls(
            refs={name: values["Ref"] for name, values in resources.items() if "Ref" in values},
            attributes={(name, attribute): value for name, values in resources.items()
                        for attribute, value in values.items() if attribute != "Ref"},
        )


class Resolver:
    """Evaluates the intrinsic functions the template uses in environment variables."""

    def __init__(self, provisioned: Provisioned, parameters: dict[str, str]):
        self.provisioned = provisioned
        self.parameters = {
            "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::StackName": "leadscore-local",
            "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", **parameters,
        }

    def __call__(self, value: Any) -> Any:
        if isinstance(value, (str, int, float, bool)):
            return str(value).lower() if isinstance(value, bool) else str(value)
        if isinstance(value, dict) and len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                return self.provisioned.attributes[(arg[0], arg[1])]
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                separator, items = arg
                return separator.join(self(item) for item in items)
            if key == "Fn::If":
                raise ValueError("Fn::If in an environment variable is not supported locally")
        raise ValueError(f"cannot resolve {value!r} locally")

    def _ref(self, name: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        return self.provisioned.refs[name]

    def _sub(self, arg: Any) -> str:
        template, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token in variables:
                return self(variables[token])
            if "." in token:
                logical_id, attribute = token.split(".", 1)
                return self.provisioned.attributes[(logical_id, attribute)]
            return self._ref(token)

        return re.sub(r"\$\{([^}!]+)\}", replace, template)


def provision(
    template: dict[str, Any], endpoint_url: str, secret_values: dict[str, str], prefix: str,
    parameters: dict[str, str] | None = None,
) -> Provisioned:
    """Create queues (DLQs first), tables, secrets, parameters, topics and buckets; return
    their identifiers."""
    sqs = local_client("sqs", endpoint_url)
    dynamodb = local_client("dynamodb", endpoint_url)
    secrets = local_client("secretsmanager", endpoint_url)
    sns = local_client("sns", endpoint_url)
    ssm = local_client("ssm", endpoint_url)
    s3 = local_client("s3", endpoint_url)
    out = Provisioned()
    resolve_names = Resolver(out, {"Stage": "local", **(parameters or {})})

    def resolve_name(value: Any) -> str | None:
        return resolve_names(value) if value is not None else None

    resources = template.get("Resources", {})

    queues = {k: v for k, v in resources.items() if v["Type"] == "AWS::SQS::Queue"}
    # Queues without a redrive policy (the DLQs) must exist before the queues pointing at them.
    def has_dlq(logical_id: str) -> bool:
        return "RedrivePolicy" in queues[logical_id].get("Properties", {})

    for logical_id in sorted(queues, key=has_dlq):
        props = queues[logical_id].get("Properties", {})
        attributes = {}
        if "VisibilityTimeout" in props:
            attributes["VisibilityTimeout"] = str(props["VisibilityTimeout"])
        if "MessageRetentionPeriod" in props:
            attributes["MessageRetentionPeriod"] = str(props["MessageRetentionPeriod"])
        if "RedrivePolicy" in props:
            dlq = _target_id(props["RedrivePolicy"]["deadLetterTargetArn"])
            out.dlq_of[logical_id] = dlq
            attributes["RedrivePolicy"] = json.dumps({
                "deadLetterTargetArn": out.attributes[(dlq, "Arn")],
                "maxReceiveCount": int(props["RedrivePolicy"]["maxReceiveCount"]),
            })
        name = f"{prefix}-{logical_id}"
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        out.refs[logical_id] = url
        out.queue_urls[logical_id] = url
        out.attributes[(logical_id, "Arn")] = arn
        out.attributes[(logical_id, "QueueName")] = name
        out.attributes[(logical_id, "QueueUrl")] = url

    for logical_id, resource in resources.items():
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if kind == "AWS::DynamoDB::Table":
            name = f"{prefix}-{logical_id}"
            dynamodb.create_table(
                TableName=name,
                KeySchema=props["KeySchema"],
                AttributeDefinitions=props["AttributeDefinitions"],
                BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"),
                **({"GlobalSecondaryIndexes": props["GlobalSecondaryIndexes"]}
                   if "GlobalSecondaryIndexes" in props else {}),
            )
            ttl = props.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                    "Enabled": True, "AttributeName": ttl["AttributeName"],
                })
            out.refs[logical_id] = name
            out.attributes[(logical_id, "Arn")] = (
                f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
            )
        elif kind == "AWS::SecretsManager::Secret":
            # Secrets the local stack has no meaningful value for (e.g. hashing keys) get a
            # random one, as GenerateSecretString would give in AWS.
            value = secret_values.get(logical_id) or secrets_module.token_urlsafe(32)
            arn = secrets.create_secret(Name=f"{prefix}/{logical_id}", SecretString=value)["ARN"]
            out.refs[logical_id] = arn
            out.attributes[(logical_id, "Id")] = arn
        elif kind == "AWS::SSM::Parameter":
            name = resolve_name(props.get("Name")) or f"/{prefix}/{logical_id}"
            ssm.put_parameter(Name=name, Value=str(props["Value"]),
                              Type=props.get("Type", "String"), Overwrite=True)
            out.refs[logical_id] = name
            out.attributes[(logical_id, "Value")] = str(props["Value"])
        elif kind == "AWS::S3::Bucket":
            name = f"{prefix}-{logical_id}".lower()  # bucket names are lower case
            s3.create_bucket(Bucket=name,
                             CreateBucketConfiguration={"LocationConstraint": REGION})
            if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
                s3.put_bucket_versioning(Bucket=name,
                                         VersioningConfiguration={"Status": "Enabled"})
            out.refs[logical_id] = name
            out.attributes[(logical_id, "Arn")] = f"arn:aws:s3:::{name}"
        elif kind == "AWS::SNS::Topic":
            arn = sns.create_topic(Name=f"{prefix}-{logical_id}")["TopicArn"]
            out.refs[logical_id] = arn
            out.attributes[(logical_id, "TopicArn")] = arn
            out.attributes[(logical_id, "TopicName")] = f"{prefix}-{logical_id}"
    # Topic → queue subscriptions (moto delivers what is published), once both exist.
    for resource in resources.values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::SNS::Subscription" and props.get("Protocol") == "sqs":
            sns.subscribe(TopicArn=resolve_names(props["TopicArn"]), Protocol="sqs",
                          Endpoint=resolve_names(props["Endpoint"]), Attributes={
                              "RawMessageDelivery": str(props.get("RawMessageDelivery", False))
                              .lower()})
    return out


def _target_id(value: Any) -> str:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return value["Fn::GetAtt"][0]
    raise ValueError(f"deadLetterTargetArn must be !GetAtt <Queue>.Arn, got {value!r}")
