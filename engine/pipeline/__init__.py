"""The evaluation pipeline: facts in, decided and recorded firings out.

Owns the nightly run over the book in batches (`run`), matching compiled predicates
against facts (`matching`), the policy-stage protocol and its registry (`policy`),
the run and firing tables and their writes (`recording`) and rule tests as data run
through this same path (`ruletest`). Record hooks and policy stages come from the
wings above through `register_record_hook` and `register_stage`, called only by
engine.composition.

May import: the ground floor, engine.facts, engine.language, engine.supervision.browse.
Never compliance, dispatch, servicing, events, supervision, demo or cli.
"""
