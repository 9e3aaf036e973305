"""Vigil: the county treasury emergency plan, made executable."""

__version__ = "0.1.0"
