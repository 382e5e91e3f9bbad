"""Fact providers beyond the built-ins of engine.facts; each module registers on import.

Add one import line per provider module.
"""
