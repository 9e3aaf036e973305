"""Incidents, the escalation ladder (P4.1) and delivery to the people the plan names."""
