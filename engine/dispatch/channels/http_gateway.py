"""SMS and IM through an HTTP gateway (urllib; no extra dependency).

Request: `POST <gateway.url>` with JSON `{channel, to, text, subject, client_ref,
idempotency_key}` and the header `Idempotency-Key`. The gateway must answer a repeated
key with the first request's receipt and not deliver again; that is what makes a
resend after a crash safe. Response: 2xx with JSON `{"id": "<receipt>"}`.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request

from engine.dispatch.channels import OutMessage, PermanentError, TransientError
from engine.config.dispatch import GatewayConfig

_RETRY_STATUS = {408, 425, 429}


class GatewayChannel:
    idempotent = True

    def __init__(self, name: str, cfg: GatewayConfig):
        self.name = name
        self.cfg = cfg

    def _request(self, msg: OutMessage) -> urllib.request.Request:
        body = {"channel": self.name, "to": msg.recipient, "text": msg.body, "subject": msg.subject,
                "client_ref": msg.client_ref, "idempotency_key": msg.idempotency_key}
        headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": msg.idempotency_key}
        token = os.environ.get(self.cfg.token_env) if self.cfg.token_env else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return urllib.request.Request(str(self.cfg.url), data=data, headers=headers, method="POST")

    def send(self, msg: OutMessage) -> str:
        if not self.cfg.url:
            raise PermanentError("GATEWAY_NOT_CONFIGURED",
                                 f"{self.name}: set dispatch.gateway.url in config.yaml to send {self.name} messages")
        try:
            with urllib.request.urlopen(self._request(msg), timeout=self.cfg.timeout_seconds) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read()[:200].decode("utf-8", "replace")
            cls = TransientError if e.code >= 500 or e.code in _RETRY_STATUS else PermanentError
            raise cls(f"GATEWAY_HTTP_{e.code}", f"gateway answered {e.code}: {detail}") from e
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as e:
            raise TransientError("GATEWAY_UNREACHABLE", f"gateway {self.cfg.url}: {e}") from e
        try:
            receipt = json.loads(raw)["id"]
        except (ValueError, KeyError, TypeError) as e:
            raise TransientError("GATEWAY_BAD_RESPONSE", f"gateway answered without a JSON id: {raw[:200]!r}") from e
        return str(receipt)
