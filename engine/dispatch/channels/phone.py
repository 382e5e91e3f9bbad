"""Phone: advisor call tasks. They are firings with status `open`, listed for the advisor,
closed with `steward outcome` and escalated when overdue; nothing is sent by the outbox."""

from __future__ import annotations

from engine.dispatch.channels import OutMessage, PermanentError


class PhoneChannel:
    name = "phone"
    idempotent = True

    def send(self, msg: OutMessage) -> str:
        raise PermanentError("PHONE_IS_TASK", "phone contacts are advisor call tasks, not outbox messages")
