"""E-mail over SMTP (smtplib).

SMTP has no idempotency: the Message-ID is derived from the idempotency key, so a
mailbox that de-duplicates by Message-ID shows a resent message once, but the protocol
itself cannot tell a retry from a new message. The outbox records a `transmitting`
phase before the SMTP transaction, so only a crash inside that transaction is uncertain.
"""

from __future__ import annotations

import os
import smtplib
import socket
from email.message import EmailMessage
from email.utils import formatdate

from engine.dispatch.channels import OutMessage, PermanentError, TransientError
from engine.config.dispatch import EmailConfig


def message_id(key: str) -> str:
    return f"<{key}@steward.invalid>"


class EmailChannel:
    name = "email"
    idempotent = False

    def __init__(self, cfg: EmailConfig):
        self.cfg = cfg

    def _build(self, msg: OutMessage) -> EmailMessage:
        m = EmailMessage()
        m["From"] = self.cfg.sender
        m["To"] = msg.recipient
        m["Subject"] = msg.subject or ""
        m["Date"] = formatdate(localtime=False)
        m["Message-ID"] = message_id(msg.idempotency_key)
        m["X-Idempotency-Key"] = msg.idempotency_key
        m.set_content(msg.body)
        return m

    def send(self, msg: OutMessage) -> str:
        email = self._build(msg)
        try:
            with smtplib.SMTP(self.cfg.host, self.cfg.port, timeout=self.cfg.timeout_seconds) as smtp:
                if self.cfg.starttls:
                    smtp.starttls()
                if self.cfg.username:
                    smtp.login(self.cfg.username, os.environ.get(self.cfg.password_env or "", ""))
                refused = smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as e:
            raise PermanentError("SMTP_RECIPIENT_REFUSED", f"SMTP server refused {msg.recipient}: {e.recipients}") from e
        except smtplib.SMTPResponseException as e:
            cls = PermanentError if e.smtp_code >= 500 else TransientError
            raise cls(f"SMTP_{e.smtp_code}", f"SMTP server answered {e.smtp_code}: {e.smtp_error!r}") from e
        except (smtplib.SMTPException, OSError, socket.timeout) as e:
            raise TransientError("SMTP_UNREACHABLE", f"SMTP {self.cfg.host}:{self.cfg.port}: {type(e).__name__}: {e}") from e
        if refused:
            raise PermanentError("SMTP_RECIPIENT_REFUSED", f"SMTP server refused {sorted(refused)}")
        return f"smtp:{message_id(msg.idempotency_key)}"
