"""Audit keys with ids: the HMAC keys that authenticate events, so a key can be rotated.

Where the keys come from (the first that is set), in each process that writes or verifies events:

- `STEWARD_AUDIT_KEYS_FILE`: a key ring, one key per line, `<key id> <secret>`; blank lines and
  `#` comments are ignored. The **last** line is the current key (it signs new events and
  checkpoints); earlier lines only verify what they signed. `steward audit rotate-key` appends a
  new line.
- `STEWARD_AUDIT_KEY` (the secret itself) or `STEWARD_AUDIT_KEY_FILE` (a file holding it): one
  key, whose id is `default`.

Every event records the id of the key that wrote its HMAC (`audit_event.key_id`; events written
before ids existed carry none and mean `default`), so `verify` checks each event with its own key.
The database never holds a secret, only ids.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import Problem, SourceErrors, rel

KEYS_FILE_ENV, KEY_ENV, KEY_FILE_ENV = "STEWARD_AUDIT_KEYS_FILE", "STEWARD_AUDIT_KEY", "STEWARD_AUDIT_KEY_FILE"
DEFAULT_ID = "default"
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
MIN_SECRET = 16
"""Shortest secret accepted in a key ring (characters)."""


@dataclass(frozen=True)
class KeyRing:
    current: str | None
    """Id of the key that signs new events (None: no key at all)."""
    keys: dict[str, bytes] = field(default_factory=dict)

    @property
    def current_key(self) -> bytes | None:
        return self.keys.get(self.current) if self.current else None

    def key_for(self, key_id: str | None) -> bytes | None:
        return self.keys.get(key_id or DEFAULT_ID)


def parse(text: str, path: str) -> KeyRing:
    """A key ring file's text; every bad line is a located error (the secret is never echoed)."""
    keys: dict[str, bytes] = {}
    problems, current = [], None
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        kid, _, secret = line.partition(" ")
        secret = secret.strip()
        if not _ID.match(kid) or not secret:
            problems.append(Problem(path, i, "", "expected `<key id> <secret>` (id: letters, digits, _ . -, at most 32)"))
        elif kid in keys:
            problems.append(Problem(path, i, kid, "this key id is already used on an earlier line: ids never repeat"))
        elif len(secret) < MIN_SECRET:
            problems.append(Problem(path, i, kid, f"the secret is shorter than {MIN_SECRET} characters: "
                                                  "generate one with `steward audit rotate-key`"))
        else:
            keys[kid], current = secret.encode("utf-8"), kid
    if problems:
        raise SourceErrors(problems)
    return KeyRing(current, keys)


def _legacy() -> bytes | None:
    if v := os.environ.get(KEY_ENV):
        return v.encode("utf-8")
    if f := os.environ.get(KEY_FILE_ENV):
        return Path(f).read_bytes().strip()
    return None


def keyring() -> KeyRing:
    """The key ring of this process (docs/audit.md, "Key handling")."""
    if (f := os.environ.get(KEYS_FILE_ENV)) and Path(f).is_file():
        return parse(Path(f).read_text(encoding="utf-8"), rel(f))
    key = _legacy()
    return KeyRing(DEFAULT_ID, {DEFAULT_ID: key}) if key else KeyRing(None)


def _new_id(ring: KeyRing) -> str:
    n = len(ring.keys) + 1
    while f"k{n}" in ring.keys:
        n += 1
    return f"k{n}"


def rotate(path: Path) -> tuple[str | None, str]:
    """Append a new current key to the key ring file (created mode 0600); returns (old id, new id).

    A ring started from a single key (STEWARD_AUDIT_KEY or _FILE) keeps that key as `default`, so the
    events it signed still verify.
    """
    if path.is_file():
        ring, text = parse(path.read_text(encoding="utf-8"), rel(path)), path.read_text(encoding="utf-8")
    else:
        legacy = _legacy()
        ring = KeyRing(DEFAULT_ID, {DEFAULT_ID: legacy}) if legacy else KeyRing(None)
        text = "# Steward audit keys: `<id> <secret>`; the last line signs new events (docs/audit.md)\n"
        if legacy:
            text += f"{DEFAULT_ID} {legacy.decode('utf-8')}\n"
    new = _new_id(ring)
    text = (text if text.endswith("\n") or not text else text + "\n") + f"{new} {secrets.token_hex(32)}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # all or nothing: a crash leaves the old ring intact
    return ring.current, new
