"""Shared e2e fixtures: one `leadscore local up` subprocess per test module, and clients for
it (the official HubSpot SDK with the outside token, boto3 against moto)."""

from __future__ import annotations

import pytest
from hubspot import HubSpot
from support import ROOT, aws_client, hubspot_sdk

from leadscore_local.process import LocalStackProcess


@pytest.fixture(scope="module")
def stack():
    # Slack off: hot leads posted at one a second would keep the stack busy for minutes after
    # each burst; tests/e2e/test_what_reps_see.py runs its own stack with Slack.
    with LocalStackProcess(ROOT, slack=False) as running:
        yield running


@pytest.fixture(scope="module")
def hubspot(stack) -> HubSpot:
    return hubspot_sdk(stack)


@pytest.fixture(scope="module")
def aws(stack):
    """`aws("dynamodb")`: a boto3 client for the stack's moto endpoint."""
    return lambda service: aws_client(stack, service)
