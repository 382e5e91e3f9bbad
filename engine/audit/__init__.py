"""The audit record: proof of every firing, send and change.

Owns the hash-chained, append-only event log with content-addressed blobs and its
verification (`log`), clients' facts snapshots stored once by hash (`facts_store`), the events of firings (`firing_events`: `record_firings` is the record hook
engine.composition installs),
the audit keys with ids and their rotation (`keys`), chain-head checkpoints outside the
database (`checkpoint`, `notary`: a file and an HTTP notary), the cross-check of the tables
the log describes (`crosscheck`) and retention with legal holds (`retention`).

A ground-floor service every wing may write to: imports only the ground floor
(engine.errors, engine.config, engine.db, engine.models, engine.clock).
"""
