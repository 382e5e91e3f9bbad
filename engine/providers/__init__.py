"""Fact providers beyond the built-ins of engine.facts; each module registers on import.

Add one import line per provider module.
"""
import engine.providers.holdings  # noqa: F401,E402
import engine.providers.playbook  # noqa: F401,E402
import engine.rulesdoc  # noqa: F401,E402
