"""DPDP: consent, erasure and retention (India's Digital Personal Data Protection Act, 2023).

Owns: the consent gate (`consent`), erasure with its receipts (`erasure`), the daily consent
sweep (`sweep`) and retention purge (`retention`), the record of which processors received a
contact's data (`disclosures`), their environments (`settings`) and Lambda wiring (`wiring`),
and the protocols of the stores it erases from and scans (`stores`), which the score ledger
implements: the ledger is handed in, never imported.
May import: hubspot, base.
"""
