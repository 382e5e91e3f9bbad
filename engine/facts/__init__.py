"""Facts: the client book in, one snapshot per client out.

Owns the fact-provider registry and the built-in providers (`base`, `holdings`,
`playbook`), the tables of the client profile and product master (`tables`, beside
engine.models), segment models, risk questionnaires and scoring, the trading
calendar, festivals, products, CSV import of a back office's files (`importer`) and
docs/facts.md (`docs`). Only this wing queries client data for evaluation.

May import: the ground floor (engine.errors, engine.config, engine.db, engine.models,
engine.yamlio, engine.clock). Never the rule language, the pipeline or anything above.
"""
