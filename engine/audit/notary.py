"""The external append-only checkpoint store: an HTTP notary (docs/audit.md, "Checkpoints").

The protocol is small so that any transparency log or WORM service can sit behind a thin adapter:

- `POST <url>` with the checkpoint as JSON (`at`, `seq`, `hash`, `mac`, `key_id`) stores it:
  `201` (or `200` when a checkpoint with this `seq` and `hash` is already stored); `409` when the
  store holds another `hash` for that `seq` (it never overwrites); anything else is a failure.
- `GET <url>/latest` answers the checkpoint with the highest `seq` as JSON, or `404` when none.

With `audit.checkpoint_token_env`, both carry `Authorization: Bearer <token>`. Plain urllib on
purpose: the audit wing imports nothing above the ground floor, and one POST a day needs no more.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from engine.errors import StewardError


class NotaryError(StewardError):
    """The notary refused or could not be reached."""


def _request(url: str, token: str | None, timeout: float, body: bytes | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:  # noqa: S310 - the configured notary URL
            return int(res.status), res.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()
    except (urllib.error.URLError, OSError) as e:
        raise NotaryError(f"checkpoint notary {url} cannot be reached: {getattr(e, 'reason', e)}; the file copy "
                          "was written, and the next checkpoint posts the newer head (audit.checkpoint_url)") from e


def post(url: str, checkpoint: dict[str, Any], token: str | None, timeout: float) -> None:
    status, body = _request(url, token, timeout, json.dumps(checkpoint, sort_keys=True).encode("utf-8"))
    if status == 409:
        raise NotaryError(f"checkpoint notary {url} already holds a different checkpoint #{checkpoint['seq']} and "
                          "refuses to overwrite it: the chain was rebuilt or rewound since; run `steward audit "
                          f"verify` and investigate ({body[:200].decode('utf-8', 'replace')})")
    if status not in (200, 201):
        raise NotaryError(f"checkpoint notary {url} answered {status}: {body[:200].decode('utf-8', 'replace')}")


def latest(url: str, token: str | None, timeout: float) -> dict[str, Any] | None:
    status, body = _request(url.rstrip("/") + "/latest", token, timeout)
    if status == 404:
        return None
    if status != 200:
        raise NotaryError(f"checkpoint notary {url} answered {status} for /latest: "
                          f"{body[:200].decode('utf-8', 'replace')}")
    try:
        obj = json.loads(body)
    except ValueError as e:
        raise NotaryError(f"checkpoint notary {url}/latest did not answer JSON: {e}") from e
    if not isinstance(obj, dict):
        raise NotaryError(f"checkpoint notary {url}/latest answered {type(obj).__name__}, not a checkpoint object")
    return obj
