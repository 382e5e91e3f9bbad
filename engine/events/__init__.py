"""Event intake and event rules: react to what happens during the trading day.

Modules, in data-flow order: `schema` (event types, parsed at the boundary),
`store` (durable, idempotent event store; facts updates), `eventrules` (the YAML
form of event rules), `processor` (conditions on durable-rules, sequences,
absences with persisted deadlines, recording through the snapshot pipeline),
`service` (the single engine thread, replay on start), `http` (intake endpoint)
and `ruletest` (timed rule tests as data). docs/events.md is the guide.
"""
