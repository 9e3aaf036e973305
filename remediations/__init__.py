"""The plan as a runbook (P4.3.x) and the executor that carries it out."""
