"""Probes: one module per kind, each turning one observation into a `Result`."""

from vigil.result import Result, Status

__all__ = ["Result", "Status"]
