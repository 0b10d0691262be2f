"""AWS list prices for the services leadscore uses in Asia Pacific (Mumbai, ap-south-1), and the
arithmetic from measured usage to USD. Used by aws_cost_bench.py; pure, so tests/unit tests it.

Prices were read on READ_ON. AWS's pricing pages draw their regional tables with JavaScript,
so the stored copies searched here carry US East figures only; the Mumbai figures are AWS
Price List API values (usage types `APS3-...`) as two public ap-south-1 cost studies recorded
them (PRICE_LIST_QUOTES), with the billing rules from the AWS pages named per price. Where no
Mumbai figure was found, the documented US East (N. Virginia) price is used and marked
`us-east-1`: the output says so. Free tiers are left out, so the figures hold at scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

READ_ON = "2026-12-04"
MUMBAI = "ap-south-1"
US_EAST = "us-east-1 (no ap-south-1 figure found)"
PRICE_LIST_QUOTES = (
    "AWS Price List API (aws pricing get-products, location 'Asia Pacific (Mumbai)') as quoted "
    "by public ap-south-1 cost studies on GitHub: a serverless/EC2 comparison's 'captured "
    "pricing snapshot' (APS3-Request, APS3-Lambda-GB-Second, APS3-ApiGatewayHttpRequest) and a "
    "cost.py read from the Price List API on 17 Sep 2026 (APS3-Lambda-GB-Second-ARM, "
    "APS3-WriteRequestUnits, APS3-ReadRequestUnits, APS3-DataProcessing-Bytes)")


@dataclass(frozen=True)
class Price:
    usd: float  # per unit
    unit: str
    region: str  # MUMBAI, or US_EAST where no Mumbai figure was found
    source: str


PRICES: dict[str, Price] = {
    "lambda_request": Price(
        0.20 / 1e6, "request", MUMBAI,
        "APS3-Request; https://aws.amazon.com/lambda/pricing/ (a request per invocation)"),
    "lambda_gb_second_x86_64": Price(
        0.0000166667, "GB-second", MUMBAI,
        "APS3-Lambda-GB-Second, first tier; https://aws.amazon.com/lambda/pricing/ (duration "
        "rounded up to 1 ms, times the memory configured)"),
    "lambda_gb_second_arm64": Price(
        0.0000133334, "GB-second", MUMBAI, "APS3-Lambda-GB-Second-ARM, first tier"),
    "http_api_request": Price(
        1.05 / 1e6, "request", MUMBAI,
        "APS3-ApiGatewayHttpRequest, first 300 million a month; "
        "https://aws.amazon.com/api-gateway/pricing/ (metered in 512 KB increments)"),
    "sqs_request": Price(
        0.40 / 1e6, "request (64 KB chunk)", US_EAST,
        "https://aws.amazon.com/sqs/pricing/ standard queue, first 100 billion a month; each "
        "64 KB chunk of a request's payload is a request (as quoted by cloudburn.io, Mar 2026)"),
    "sns_publish": Price(
        0.50 / 1e6, "publish (64 KB chunk)", US_EAST,
        "https://aws.amazon.com/sns/pricing/ standard topic publishes (as quoted by "
        "factualminds.com, Jun 2026); deliveries to SQS queues are not charged (from the SNS "
        "pricing page; not found in the stored copies)"),
    "dynamodb_write_unit": Price(
        0.71 / 1e6, "write request unit", MUMBAI,
        "APS3-WriteRequestUnits, on demand; units: https://docs.aws.amazon.com/whitepapers/"
        "latest/how-aws-pricing-works/dynamodb.html (1 KB a unit, transactions 2x)"),
    "dynamodb_read_unit": Price(
        0.1425 / 1e6, "read request unit", MUMBAI,
        "APS3-ReadRequestUnits, on demand (4 KB strongly consistent, half for eventually "
        "consistent, transactions 2x)"),
    "logs_ingested_gb": Price(
        0.67, "GB ingested", MUMBAI,
        "APS3-DataProcessing-Bytes (CloudWatch Logs standard ingestion); "
        "https://aws.amazon.com/cloudwatch/pricing/"),
    "secrets_manager_call": Price(
        0.05 / 1e4, "API call", US_EAST,
        "https://aws.amazon.com/secrets-manager/pricing/ $0.05 per 10,000 API calls (as quoted "
        "by hivebook.wiki)"),
    "xray_trace": Price(
        5.00 / 1e6, "trace recorded", US_EAST,
        "https://aws.amazon.com/xray/pricing/ $5.00 per million traces recorded"),
    # Fixed, per month: not per lead.
    "custom_metric_month": Price(
        0.30, "metric-month", US_EAST,
        "https://aws.amazon.com/cloudwatch/pricing/ first 10,000 metrics (EMF metrics are "
        "custom metrics)"),
    "alarm_month": Price(0.10, "standard alarm-month", US_EAST,
                         "https://aws.amazon.com/cloudwatch/pricing/"),
    "dashboard_month": Price(3.00, "dashboard-month", US_EAST,
                             "https://aws.amazon.com/cloudwatch/pricing/"),
    "secret_month": Price(0.40, "secret-month", US_EAST,
                          "https://aws.amazon.com/secrets-manager/pricing/"),
}


@dataclass(frozen=True)
class FunctionUsage:
    invocations: int
    billed_ms: float
    memory_mb: int
    architecture: str = "x86_64"

    @property
    def gb_seconds(self) -> float:
        return self.billed_ms / 1000 * self.memory_mb / 1024


@dataclass(frozen=True)
class Usage:
    """What one run used, as measured (or derived, where the bench says so)."""

    functions: dict[str, FunctionUsage]
    http_api_requests: int = 0
    sqs_requests: float = 0  # billable: 64 KB chunks
    sns_publishes: float = 0  # billable: 64 KB chunks
    dynamodb_read_units: float = 0
    dynamodb_write_units: float = 0
    log_bytes: int = 0
    secrets_manager_calls: int = 0
    xray_traces: int = 0


def lambda_usd(functions: dict[str, FunctionUsage]) -> float:
    return sum(f.invocations * PRICES["lambda_request"].usd
               + f.gb_seconds * PRICES[f"lambda_gb_second_{f.architecture}"].usd
               for f in functions.values())


def cost_by_service(usage: Usage) -> dict[str, float]:
    """USD by service for the usage of one run."""
    return {
        "Lambda": lambda_usd(usage.functions),
        "API Gateway (HTTP API)": usage.http_api_requests * PRICES["http_api_request"].usd,
        "SQS": usage.sqs_requests * PRICES["sqs_request"].usd,
        "SNS": usage.sns_publishes * PRICES["sns_publish"].usd,
        "DynamoDB": usage.dynamodb_read_units * PRICES["dynamodb_read_unit"].usd
        + usage.dynamodb_write_units * PRICES["dynamodb_write_unit"].usd,
        "CloudWatch Logs": usage.log_bytes / 1e9 * PRICES["logs_ingested_gb"].usd,
        "Secrets Manager": usage.secrets_manager_calls * PRICES["secrets_manager_call"].usd,
        "X-Ray": usage.xray_traces * PRICES["xray_trace"].usd,
    }


def per_thousand(usd: float, count: int) -> float:
    """USD per 1,000 of something of which `count` were processed."""
    if count <= 0:
        return math.nan
    return usd * 1000 / count


def fixed_monthly(custom_metrics: int, alarms: int, dashboards: int, secrets: int,
                  idle_sqs_requests: float) -> dict[str, float]:
    """What the stack costs a month whatever the number of leads (free tiers left out)."""
    return {
        "CloudWatch custom metrics": custom_metrics * PRICES["custom_metric_month"].usd,
        "CloudWatch alarms": alarms * PRICES["alarm_month"].usd,
        "CloudWatch dashboards": dashboards * PRICES["dashboard_month"].usd,
        "Secrets Manager secrets": secrets * PRICES["secret_month"].usd,
        "SQS idle polling by Lambda": idle_sqs_requests * PRICES["sqs_request"].usd,
    }
