"""Where one leadscore stack keeps things, for the operator commands that read it
(`leadscore dpdp access`, `leadscore dpdp affected`): its resources by logical id, its
parameters, the AWS endpoint and region, and HubSpot's URL and a token.

Two sources, one shape: a deployed stack (CloudFormation's resource list and parameters; the
HubSpot token from `HUBSPOT_TOKEN` or else the stack's HubSpotTokenSecret), or the local stack
(the JSON line `leadscore local up` printed: its `resources`, `aws_endpoint_url`, `hubspot_url`
and `hubspot_token`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import boto3

DEFAULT_HUBSPOT_URL = "https://api.hubapi.com"
LOCAL_REGION = "ap-south-1"  # the local stack's moto region


class StackNotReadable(Exception):
    """The stack (or the JSON line) cannot be read; the message says why."""


@dataclass
class StackView:
    resources: dict[str, str]  # logical id -> physical id (what !Ref gives)
    region: str
    endpoint_url: str | None = None
    hubspot_url: str = DEFAULT_HUBSPOT_URL
    hubspot_token: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    name: str = "leadscore"
    credentials: dict[str, str] = field(default_factory=dict)  # the local stack takes any

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=self.region, endpoint_url=self.endpoint_url,
                            **self.credentials)

    def resource(self, service: str) -> Any:
        return boto3.resource(service, region_name=self.region, endpoint_url=self.endpoint_url,
                              **self.credentials)

    def physical(self, logical_id: str) -> str | None:
        return self.resources.get(logical_id)

    def of_type_prefix(self, prefix: str) -> dict[str, str]:
        """Resources whose logical id ends with `prefix` (e.g. "LogGroup")."""
        return {k: v for k, v in self.resources.items() if k.endswith(prefix)}

    def token(self) -> str:
        """A HubSpot token: the view's own, `HUBSPOT_TOKEN`, else the stack's secret."""
        token = self.hubspot_token or os.environ.get("HUBSPOT_TOKEN")
        if token:
            return token
        secret = self.physical("HubSpotTokenSecret")
        if not secret:
            raise StackNotReadable("set HUBSPOT_TOKEN: the stack has no HubSpotTokenSecret")
        return self.client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"]


def from_cloudformation(stack_name: str, region: str,
                        endpoint_url: str | None = None) -> StackView:
    cloudformation = boto3.client("cloudformation", region_name=region,
                                  endpoint_url=endpoint_url)
    try:
        [stack] = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
        resources: dict[str, str] = {}
        for page in cloudformation.get_paginator("list_stack_resources").paginate(
                StackName=stack_name):
            for summary in page["StackResourceSummaries"]:
                if summary.get("PhysicalResourceId"):
                    resources[summary["LogicalResourceId"]] = summary["PhysicalResourceId"]
    except Exception as error:  # botocore's errors, and no such stack
        raise StackNotReadable(f"cannot read stack {stack_name!r} in {region}: {error}") from None
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "")
                  for p in stack.get("Parameters", [])}
    return StackView(resources=resources, region=region, endpoint_url=endpoint_url,
                     hubspot_url=parameters.get("HubSpotBaseUrl") or DEFAULT_HUBSPOT_URL,
                     parameters=parameters, name=stack_name)


def from_local_line(text: str) -> StackView:
    """The JSON line of `leadscore local up`."""
    try:
        line = json.loads(text.strip().splitlines()[0])
        resources = {logical_id: values["Ref"] for logical_id, values in line["resources"].items()
                     if "Ref" in values}
        return StackView(resources=resources, region=LOCAL_REGION,
                         endpoint_url=line["aws_endpoint_url"], hubspot_url=line["hubspot_url"],
                         hubspot_token=line["hubspot_token"], name="leadscore-local",
                         credentials={"aws_access_key_id": "local",
                                      "aws_secret_access_key": "local"})
    except (IndexError, KeyError, TypeError, ValueError) as error:
        raise StackNotReadable(f"not the JSON line of `leadscore local up`: {error!r}") from None
