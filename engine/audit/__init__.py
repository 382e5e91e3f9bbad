"""The audit record: proof of every firing, send and change.

Owns the hash-chained, append-only event log with content-addressed blobs and its
verification (`log`; `record_firings` is the record hook engine.composition installs)
and retention with legal holds (`retention`).

A ground-floor service every wing may write to: imports only the ground floor
(engine.errors, engine.config, engine.db, engine.models, engine.clock).
"""
