"""The environments of the DPDP jobs (consent sweep, retention purge) and of erasure, which the
score function uses too (docs/CONTRACTS.md).

No numpy/lightgbm here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt

from leadscore.settings import CommonSettings, EnvModel, NonEmpty


class ErasureSettings(EnvModel):
    """What `leadscore.dpdp.erasure.eraser_from_env` needs (score, consent sweep, purge)."""

    erasure_receipts_table: NonEmpty
    erasure_receipt_key_secret: NonEmpty  # Secrets Manager id of the receipt hashing key
    audit_retention_days: PositiveInt = 1095  # how long receipts are kept (DynamoDB TTL)
    disclosures_table: str | None = None  # which processors received a contact's data

    def contact_tables(self) -> dict[str, str]:
        """Tables of derived data keyed by contact id, by the name a receipt gives their
        record: erased with every full erasure. A new such table is one more entry."""
        tables = {"disclosures": self.disclosures_table}
        return {name: table for name, table in tables.items() if table}


class ConsentSweepSettings(CommonSettings, ErasureSettings):
    hubspot_token_secret: NonEmpty
    ledger_table: NonEmpty
    consent_sweep_cursor_parameter: str | None = None  # SSM name; unset: every run starts over


class RetentionPurgeSettings(CommonSettings, ErasureSettings):
    hubspot_token_secret: NonEmpty
    ledger_table: NonEmpty
    # Contacts with no consent and no activity for RETENTION_DAYS: "off" (default) ignores
    # them, "report" counts them (dry run), "delete" GDPR-deletes them in HubSpot.
    purge_inactive_contacts: Literal["off", "report", "delete"] = "off"
