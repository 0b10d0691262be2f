"""Scoring: from a HubSpot webhook to a score written back to the contact.

Owns: webhook ingest (`ingest`), the ScoreQueue / EnrichQueue messages and hot-lead alerts
(`queues`), the batch score pipeline (`pipeline`), `POST /score` (`score_api`), the score
ledger in DynamoDB (`ledger`), and the environments (`settings`) and wiring (`wiring`) of the
ingest, score and score_api functions.
May import: learning, dpdp, hubspot, model, base.
"""
