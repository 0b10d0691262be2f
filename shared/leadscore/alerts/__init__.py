"""Alerts: hot leads where the sales team works, a Slack channel.

Owns: the Slack incoming-webhook client (`slack`: pacing at Slack's one message per second,
429 with Retry-After, response codes), the message a rep reads (`message`: Block Kit, a link
to the contact in HubSpot, no e-mail or phone), the notifier that turns a hot-lead alert into
one post once the LLM summary is ready or will not come (`notifier`), and the environment
(`settings`) and wiring (`wiring`) of the slack_notify function.
May import: dpdp, hubspot, base.
"""
