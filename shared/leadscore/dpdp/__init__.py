"""dpdp."""
