"""Configuration: config.yaml parsed at the boundary into frozen, validated models.

Owns `base` (the root model, loading, located errors) and one module per section
that a wing reads (`dispatch`, `servicing`, `events`), and `governed`: which keys are
approved like rules and which are operational. Part of the ground floor:
imports only engine.errors and engine.yamlio, so every wing may import it.
"""
