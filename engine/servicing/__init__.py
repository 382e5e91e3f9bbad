"""Servicing: the advisor's side of the playbook.

Owns the advisor call lists with priorities, due dates and escalation (`calllist`),
the segment playbook, policy stage 150, which decides which marketing reaches each
segment and how often (`playbook_stage`) and task outcomes recorded by advisors,
with overdue escalation (`task_outcomes`).

May import: the ground floor, engine.audit, engine.facts, engine.language,
engine.pipeline, engine.dispatch. Never compliance, events, supervision, demo or cli.
"""
