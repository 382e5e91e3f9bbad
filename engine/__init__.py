"""Steward: a rules engine for client servicing at securities brokerages."""

__version__ = "0.1.0"
