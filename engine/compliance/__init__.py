"""Compliance: who may change what, and what may reach which client.

Owns users and roles (`users`), maker-checker review of rule, template and config
changes with approved snapshots (`review`), the suitability gate, policy stage 100
(`suitability`), impact previews of a proposal against history (`impact`) and the
console's drafts of a rule and its templates, kept in the proposal store until submitted (`drafts`).

May import: the ground floor, engine.audit, engine.facts, engine.language,
engine.pipeline. Never dispatch, servicing, events, supervision, demo or cli.
"""
