"""The demo: a deterministic synthetic brokerage book for `steward demo` and benchmarks.

Owns the synthetic clients (`clients`), writing them as a book or as import CSVs
(`book`) and their scored risk questionnaires (`playbook`).

May import every wing but cli; nothing but cli, tests and benchmarks imports it.
"""
