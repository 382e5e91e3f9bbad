"""Compliance: who may change what, and what may reach which client.

Owns users and roles (`users`), maker-checker review of rule, template and config
changes with approved snapshots (`review`), the suitability gate, policy stage 100
(`suitability`) and impact previews of a proposal against history (`impact`).

May import: the ground floor, engine.audit, engine.facts, engine.language,
engine.pipeline. Never dispatch, servicing, events, supervision, demo or cli.
"""
