"""Dispatch: from a decided firing to a delivered message, exactly once.

Owns contact policy, policy stages 200-600 (`contact_policy`: consent, do-not-call,
contact windows, frequency caps, arbitration), the transactional outbox with claim,
retry and dead letters (`outbox`; `enqueue` is the record hook), delivery channels
behind one registry (`channels/`: SMTP email, HTTP gateway for sms and im, phone
tasks), release of held messages (`release`), the gateway's inbound webhook for
receipts and opt-outs (`webhook`) and the dispatch tables (`tables`).

May import: the ground floor, engine.audit, engine.facts, engine.language,
engine.pipeline. Never compliance, servicing, events, supervision, demo or cli.
"""
