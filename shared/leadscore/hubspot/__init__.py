"""HubSpot: every call leadscore makes to the CRM, and what it writes there.

Owns: the CRM client with its request budget, retries and errors (`client`: batch read/update,
search, GDPR delete, and the `ContactProperties` / `ContactSearch` protocols), the `ai_lead_*`
property names and definitions (`properties`), webhook events and their v3 signature
(`webhooks`), and `leadscore hubspot setup` (`setup`).
May import: base.
"""
