"""The rule language: what rule authors write, loaded, checked and compiled.

Owns `when:` expressions (`expr`: parser, checker, compiler), snapshot rule specs and
Python rule files (`rules`), event rule specs and the event envelope they read
(`event_rules`, `event_schema`), message templates in Jinja's sandbox (`rendering`),
lint checks (`lint`), loading a rule set with every problem located in one pass
(`loading`) and the generated rules catalogue docs/rules.md (`docs`).

May import: the ground floor and engine.facts (rules are checked against the fact
registry). Never the pipeline, compliance, dispatch or anything above.
"""
