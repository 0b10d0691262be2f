"""leadscore: AI lead scoring for HubSpot on AWS Lambda, with DPDP consent enforcement."""
