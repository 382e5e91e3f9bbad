"""Supervision: what supervisors and auditors read.

Owns browsing and exporting the audit trail and firings (`browse`), explaining one
client's day with the rule version that ran (`explain`, `steward why`), the
supervisory review sample (`sampling`), the branch report (`report`) and message
effectiveness from outcomes (`effectiveness`).

May import every wing below it (ground floor, facts, language, pipeline, audit,
compliance, dispatch, servicing, events); never demo or cli.
"""
