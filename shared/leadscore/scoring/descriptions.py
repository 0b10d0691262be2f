"""The `ai_*` property descriptions (the tooltips reps read in HubSpot) for the model in use.

`score_guide(model)` says what the model's scores mean — tier thresholds (`[tiers]` in its
features.toml, else those stored at training), what converting means (`[label]`), the base
rate and the typical score reasons pivot on — and `leadscore.hubspot.properties.
ai_property_specs(guide)` turns that into descriptions. `leadscore hubspot setup --model DIR`
writes them; the score function, when it loads a model (once per container, so also after a
retrained model is put in use), runs `refresh_property_descriptions`, which updates only the
existing properties whose text differs: descriptions follow the tiers without anyone
re-running setup. It never fails scoring: a HubSpot error is logged and counted.

Importing this module does not import numpy/lightgbm; `score_guide` is called with a loaded
model.
"""

from __future__ import annotations

from typing import Any

from hubspot import HubSpot

from leadscore.hubspot.properties import ScoreGuide, ai_property_specs
from leadscore.hubspot.setup import refresh_descriptions
from leadscore.observability import count, logger

REFRESH_TIMEOUT_SECONDS = 5.0  # per HubSpot request; a cold start must not hang on it


def score_guide(model: Any) -> ScoreGuide:
    """What `model` (a `leadscore.model.LeadModel`) says about its scores."""
    from leadscore.model.reasons import property_label  # the model is loaded: numpy is too

    label = model.config.label
    return ScoreGuide(
        hot=model.tiers.hot, warm=model.tiers.warm, cold=model.tiers.cold,
        converted=f"{property_label(label.column)} reaches {' or '.join(label.positive)}",
        base_rate=model.metadata.get("metrics", {}).get("positive_rate"),
        typical_score=model.config.reasons.typical_score,
    )


def refresh_property_descriptions(model: Any, access_token: str, base_url: str) -> list[str]:
    """Brings the portal's `ai_*` property descriptions in line with `model`; returns the
    names updated ([] when current or when HubSpot could not be reached)."""
    try:
        client = HubSpot(access_token=access_token, host=base_url.rstrip("/"))
        updated = refresh_descriptions(client, ai_property_specs(score_guide(model)),
                                       timeout=REFRESH_TIMEOUT_SECONDS)
    except Exception as error:  # descriptions are help text: scoring goes on without them
        count("PropertyDescriptionsNotRefreshed")
        logger.warning("Property descriptions not refreshed",
                       extra={"error": type(error).__name__,
                              "status": getattr(error, "status", None)})
        return []
    if updated:
        logger.info("Property descriptions refreshed for the model in use",
                    extra={"updated": updated, "model_version": model.version})
    return updated
