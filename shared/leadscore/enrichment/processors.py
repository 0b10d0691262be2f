"""Who receives what enrichment sends, in the words of the disclosure record
(`leadscore.dpdp.disclosures`): the processor, the endpoint, the region and where the request
may be processed, for the provider and model of one request.

No numpy/lightgbm here.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlparse

from leadscore.dpdp.disclosures import Disclosure
from leadscore.enrichment.llm import LlmSettings

ANTHROPIC_API_HOST = "api.anthropic.com"


def bedrock_routing(model: str, region: str) -> str:
    """Where Bedrock may process a request for `model` called in `region`."""
    prefix = model.split(".", 1)[0] if model.count(".") >= 2 else ""
    if prefix == "apac":
        return f"called in {region}; the APAC cross-Region inference profile may process it " \
               "in another Asia-Pacific region"
    if prefix == "global":
        return f"called in {region}; the global inference profile may process it in any " \
               "commercial AWS region"
    if prefix:
        return f"called in {region}; the {prefix.upper()} cross-Region inference profile may " \
               "process it in another region of that geography"
    return f"processed in {region}"


def disclosure_for(llm: LlmSettings, model: str, fields: Sequence[str]) -> Disclosure:
    """The disclosure a request to `model` through `llm`'s provider makes."""
    if llm.provider == "bedrock":
        return Disclosure(
            processor="Amazon Web Services (Amazon Bedrock)", provider="bedrock", model=model,
            endpoint=f"bedrock-runtime.{llm.bedrock_region}.amazonaws.com",
            region=llm.bedrock_region, routing=bedrock_routing(model, llm.bedrock_region),
            fields=tuple(fields))
    if llm.provider == "anthropic":
        endpoint = urlparse(llm.base_url).netloc if llm.base_url else ANTHROPIC_API_HOST
        return Disclosure(
            processor="Anthropic PBC (Anthropic API)", provider="anthropic", model=model,
            endpoint=endpoint, routing="Anthropic's infrastructure outside India "
                                       "(principally the United States)",
            fields=tuple(fields))
    raise ValueError(f"provider {llm.provider!r} sends nothing to disclose")
