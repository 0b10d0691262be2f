"""Enrichment: an LLM-written fit summary and next action for a scored lead.

Owns: the flow for one contact (`enrich`), the LLM conversation (`conversation`), models,
prices and the SDK client (`llm`), who receives a request (`processors`: the disclosure
record), the prompt and its shipped defaults (`prompt`, `defaults/`),
redaction of what goes in and comes out (`redaction`), the answer's schema and the properties
it becomes (`assessment`), the EnrichQueue message flow with budget, deferral and
dead-lettering (`worker`), and the enrich function's environment (`settings`) and wiring
(`wiring`).
May import: dpdp, hubspot, base.
"""
