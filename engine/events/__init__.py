"""Events: react to what happens during the trading day.

Owns, in data-flow order: the durable, idempotent event store and facts updates
(`store`, tables in `tables`), conditions on durable-rules behind the one adapter
(`durable`, the only module that imports durable_rules), sequences and absences with
persisted deadlines, recorded through the snapshot pipeline (`processor`), the single
engine thread with replay on start (`service`), the HTTP intake (`http`) and timed
rule tests as data (`ruletest`). Event rule files and the event envelope are part of
the rule language (engine.language.event_rules, engine.language.event_schema).
docs/events.md is the guide.

May import: the ground floor, engine.audit, engine.facts, engine.language,
engine.pipeline, engine.compliance, engine.dispatch, engine.servicing.
Never supervision, demo or cli.
"""
