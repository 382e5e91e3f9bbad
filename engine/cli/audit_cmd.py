"""`steward audit list|show|verify|checkpoint|rotate-key|export|check-export|firings|firing|retention`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.table import Table

from engine import clock
from engine.audit import checkpoint, crosscheck, facts_store, keys
from engine.audit import log as auditlog
from engine.supervision import browse as audit
from engine.audit.log import Event, append
from engine.cli import listing
from engine.cli.common import cfg, console, err_console, fail, open_db, parse_day, progress_bar, signed_in, user_errors, viewer
from engine.errors import StewardError, did_you_mean

app = typer.Typer(no_args_is_help=True)


def _filter(**kw: Any) -> audit.EventFilter:
    try:
        return audit.EventFilter.model_validate({k: v for k, v in _normalise(kw).items() if v is not None})
    except ValidationError as e:
        msgs = [f"{_OPTION.get('.'.join(map(str, err['loc'])), '--' + '.'.join(map(str, err['loc'])).replace('_', '-'))}: "
                f"{err['msg'].removeprefix('Value error, ')}"
                f"{'' if isinstance(err.get('input'), dict) else ' (got ' + repr(err.get('input')) + ')'}"
                for err in e.errors()]
        raise StewardError("; ".join(m.replace("--: ", "") for m in msgs)) from None


_OPTION = {"name": "--event", "date_from": "--from", "date_to": "--to", "rule_class": "--class", "": ""}
"""EventFilter field -> the option a user typed."""
_CHOICES = {"segment": ("--segment", ("core", "maintenance", "dormant", "settled", "dead"), "segment"),
            "rule_class": ("--class", ("service", "marketing"), "rule class"),
            "channel": ("--channel", ("sms", "email", "im", "phone"), "channel")}


def _normalise(kw: dict[str, Any]) -> dict[str, Any]:
    """Values with a fixed set are matched case-insensitively (`--segment Dormant`), typos get a did-you-mean."""
    for key, (option, known, what) in _CHOICES.items():
        kw[key] = listing.choice(option, kw.get(key), known, what)
    return kw


_NAME = typer.Option(None, "--event", help="event name, e.g. rule.fired, send.attempted, outbox.changed")
_RULE = typer.Option(None, "--rule", help="rule id")
_VERSION = typer.Option(None, "--rule-version", help="rule content hash (a prefix is enough)")
_ADVISOR = typer.Option(None, "--advisor", help="advisor id")
_CLIENT = typer.Option(None, "--client", help="client id")
_SEGMENT = typer.Option(None, "--segment", help="core, maintenance, dormant, settled, dead")
_CLASS = typer.Option(None, "--class", help="service or marketing")
_CHANNEL = typer.Option(None, "--channel", help="sms, email, im, phone")
_STATUS = typer.Option(None, "--status", help="pending, open, suppressed, sent, ...")
_REASON = typer.Option(None, "--reason", help="reason code, e.g. OPTED_OUT_MARKETING")
_FROM = typer.Option(None, "--from", help="first evaluation day YYYY-MM-DD (events without one: by time, branch zone)")
_TO = typer.Option(None, "--to", help="last evaluation day YYYY-MM-DD, inclusive")


@app.command("list")
def list_(
    name: str = _NAME, rule: str = _RULE, rule_version: str = _VERSION, advisor: str = _ADVISOR, client: str = _CLIENT,
    segment: str = _SEGMENT, rule_class: str = _CLASS, channel: str = _CHANNEL, status: str = _STATUS,
    reason: str = _REASON, date_from: str = _FROM, date_to: str = _TO,
    limit: int = listing.limit_option(),
    page: int = listing.page_option(),
) -> None:
    """Audit events, newest first, filtered; a page at a time with the total.

    Examples:

      steward audit list --event rule.fired --limit 20

      steward audit list --client C000001 --from 2026-06-01 --segment Dormant
    """
    with user_errors():
        f = _filter(name=name, rule=rule, rule_version=rule_version, advisor=advisor, client=client, segment=segment,
                    rule_class=rule_class, channel=channel, status=status, reason=reason, date_from=date_from, date_to=date_to)
        c = cfg()
        eng = open_db(c)
        with eng.connect() as conn:
            total = audit.count_events(conn, f, c.tz)
            rows = audit.list_events(conn, f, c.tz, limit, offset=(page - 1) * limit)
    t = Table(title="Audit events, newest first", caption=listing.page_caption("events", len(rows), total, page, limit))
    for col in ("id", f"time ({c.timezone})", "event", "actor", "client", "advisor", "rule", "version", "channel", "status", "reason"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(str(r.seq), listing.zoned(r.at, c.tz), r.name, r.actor, r.client_id or "",
                  r.advisor_id or "", r.rule_id or "", (r.rule_hash or "")[:10], r.channel or "", r.status or "", r.reason or "")
    console.print(t)
    if not total:
        console.print("No events match. Run [bold]steward run[/] (or [bold]steward demo[/]) first, or widen the filters.")


@app.command("show")
def show(
    event_id: int = typer.Argument(..., help="event id from `steward audit list`"),
    unmask: str = typer.Option(None, "--unmask", help="show restricted personal data; give the reason (logged)"),
) -> None:
    """One event in full, with its place in the chain.

    Example:

      steward audit show 1
    """
    from engine.audit import retention

    with user_errors():
        c = cfg()
        eng = open_db(c)
        with eng.begin() as conn:
            found = audit.get_event(conn, event_id)
            firing_exists = found is None and audit.get_firing(conn, event_id) is not None
            restricted = found is not None and retention.is_restricted(found[0].at, parse_day(None, c), c)
            if found is not None and found[0].client_id:
                append(conn, [Event("client.viewed", actor=viewer(conn), client_id=found[0].client_id,
                                    data={"command": "audit show", "event": event_id, "restricted": restricted,
                                          "unmasked_because": unmask if restricted else None})])
            data = _with_facts(conn, json.loads(found[0].body).get("data") or {}) if found is not None else {}
    if found is None:
        other = (f"firing {event_id} exists: `steward audit firing {event_id}` shows it" if firing_exists
                 else f"no firing with id {event_id} either")
        fail(f"no audit event with id {event_id} ({other}); `steward audit list` shows the event ids")
        return
    r, pos = found
    t = Table(show_header=False, title=f"Audit event #{r.seq} of {pos.total}: {r.name}")
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    t.add_row("chain", f"position {pos.seq} of {pos.total}; link {'OK' if pos.link_ok else 'BROKEN'}")
    for k in ("at", "actor", "client_id", "advisor_id", "rule_id", "rule_hash", "template_hash", "firing_id", "as_of",
              "segment", "rule_class", "channel", "status", "reason", "prev_hash", "hash"):
        v = getattr(r, k)
        if v is not None:
            t.add_row(k, str(v))
    if restricted and not unmask:
        data = retention.restrict(data)
        t.add_row("restricted", "personal data past its purpose is masked; --unmask REASON shows it (logged)")
    for k, v in data.items():
        t.add_row(k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, indent=1, sort_keys=True))
    console.print(t)


def _with_facts(conn: Any, data: dict[str, Any]) -> dict[str, Any]:
    """A rule.fired event's data with the facts snapshot it names by hash shown in `facts` (so
    retention masks it like an inline one)."""
    if data.get("facts_sha256") and "facts" not in data:
        return {**data, "facts": facts_store.one(conn, data)}
    return data


@app.command("verify")
def verify_(
    head: list[str] = typer.Option([], "--head", help="a published head SEQ:HASH that must still be in the chain"),
    no_checkpoint: bool = typer.Option(False, "--no-checkpoint", help="do not compare with the latest checkpoint file"),
) -> None:
    """Walk the whole chain and cross-check the tables it describes; report what is broken.

    Checks each event's hash, its HMAC (with STEWARD_AUDIT_KEY or STEWARD_AUDIT_KEY_FILE set),
    the latest chain-head checkpoint (audit.checkpoint_file), and that firings, outbox messages
    and stored sources agree with their events.

    Examples:

      steward audit verify

      STEWARD_AUDIT_KEY_FILE=/etc/steward/audit.key steward audit verify
    """
    with user_errors():
        heads = []
        for h in head:
            seq, _, hsh = h.partition(":")
            if not seq.isdigit() or len(hsh) != 64:
                raise StewardError(f"--head: expected SEQ:HASH with a 64-character hash, got {h!r}")
            heads.append((int(seq), hsh))
        c = cfg()
        ring = keys.keyring()
        key = ring.current_key
        cp = None if no_checkpoint else checkpoint.latest(c.path(c.audit.checkpoint_file), None, ring)
        ext = None if no_checkpoint else checkpoint.latest_external(c, ring)
        heads += [(x.seq, x.hash) for x in (cp, ext) if x is not None]
        _same_seq(cp, ext, c.audit.checkpoint_url)
        eng = open_db(c)
        with eng.connect() as conn:
            res = auditlog.verify(conn, heads, ring=ring)
            problems = crosscheck.cross_check(conn) if res.ok else []
    if not res.ok:
        fail(f"audit chain broken at {res.broken}; {res.events:,} events before it are intact", code=1)
    if problems:
        for p in problems[:crosscheck.LIMIT]:
            err_console.print(f"[red]mismatch[/] {p}", highlight=False)
        fail(f"the audit log and the tables disagree in {len(problems):,} place(s) (first {crosscheck.LIMIT} above)", code=1)
    if ext is None and c.audit.checkpoint_url and not no_checkpoint:
        err_console.print(f"[yellow]warning:[/] the notary {c.audit.checkpoint_url} holds no checkpoint yet "
                          "(`steward audit checkpoint`)", highlight=False)
    if key is None:
        err_console.print("[yellow]warning:[/] no audit key (STEWARD_AUDIT_KEYS_FILE, STEWARD_AUDIT_KEY or _FILE): event HMACs "
                          "were not checked, so an event inserted by hand would pass (docs/audit.md)", highlight=False)
    if cp is None and not no_checkpoint:
        err_console.print(f"[yellow]warning:[/] no checkpoint in {c.audit.checkpoint_file} yet "
                          "(`steward audit checkpoint`; the scheduler writes one daily)", highlight=False)
    console.print(f"audit chain OK: {res.events:,} events, {res.blobs_checked:,} sources; firings, outbox and "
                  f"sources agree with their events; head #{res.head_seq} {res.head_hash}"
                  + (f"; checkpoint #{cp.seq} of {cp.at} found" if cp else "")
                  + (f"; notary checkpoint #{ext.seq} of {ext.at} found" if ext else ""), highlight=False)


def _same_seq(cp: checkpoint.Checkpoint | None, ext: checkpoint.Checkpoint | None, url: str | None) -> None:
    """The file and the notary must agree: a file cut short, or a head that differs, is tampering."""
    if cp is None or ext is None:
        if ext is not None and cp is None:
            raise StewardError(f"the notary {url} holds checkpoint #{ext.seq} but the checkpoint file has none: "
                               "the file was removed or replaced")
        return
    if ext.seq > cp.seq:
        raise StewardError(f"the notary {url} holds checkpoint #{ext.seq} of {ext.at}, newer than the file's last "
                           f"#{cp.seq}: the checkpoint file was cut short or replaced")
    if ext.seq == cp.seq and ext.hash != cp.hash:
        raise StewardError(f"checkpoint #{cp.seq} differs between the file ({cp.hash[:12]}…) and the notary "
                           f"{url} ({ext.hash[:12]}…): one of them was rewritten")


@app.command("checkpoint")
def checkpoint_() -> None:
    """Append the chain head to the checkpoint file outside the database (the scheduler does it daily).

    Example: steward audit checkpoint
    """
    with user_errors():
        c = cfg()
        eng = open_db(c)
        with eng.connect() as conn:
            cp = checkpoint.publish(conn, c, clock.now())
    console.print(f"checkpoint #{cp.seq} {cp.hash} appended to {c.audit.checkpoint_file}"
                  + (f" and posted to {c.audit.checkpoint_url}" if c.audit.checkpoint_url else ""), highlight=False)


@app.command("rotate-key")
def rotate_key() -> None:
    """Start signing audit events with a new key; old events keep verifying with the old ones.

    Appends a new key (a fresh 256-bit secret with the next id) to the key ring file named by
    STEWARD_AUDIT_KEYS_FILE, creating it from STEWARD_AUDIT_KEY(_FILE) when it does not exist
    yet, and records an `audit.key_rotated` event signed with the new key. Give the new file to
    every process that writes or verifies events (docs/audit.md, rotating the key).

    Examples:

      steward audit rotate-key

      STEWARD_AUDIT_KEYS_FILE=/etc/steward/audit.keys steward audit rotate-key
    """
    import os

    with user_errors():
        c = cfg()
        eng = open_db(c)
        with eng.begin() as conn:
            actor = signed_in(conn, "audit rotate-key").name
        path = os.environ.get(keys.KEYS_FILE_ENV)
        if not path:
            raise StewardError(f"set {keys.KEYS_FILE_ENV} to the key ring file (e.g. /etc/steward/audit.keys, mode 0600): "
                               "rotate-key appends the new key there (docs/audit.md, rotating the key)")
        old, new = keys.rotate(Path(path))
        with eng.begin() as conn:
            append(conn, [Event("audit.key_rotated", actor=actor, data={
                "old_key_id": old, "new_key_id": new, "key_file": str(Path(path).resolve())})])
    console.print(f"audit key {new} is now current (was {old or 'none'}); new events and checkpoints are signed with it. "
                  f"Keep every earlier line of {path}: verify needs them for older events.", highlight=False)


@app.command("export")
def export_(
    out: Path = typer.Option(..., "--out", help="folder to write events, sources and manifest.json into"),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl, csv (UTF-8 with BOM, opens in Excel) or xlsx"),
    name: str = _NAME, rule: str = _RULE, rule_version: str = _VERSION, advisor: str = _ADVISOR, client: str = _CLIENT,
    segment: str = _SEGMENT, rule_class: str = _CLASS, channel: str = _CHANNEL, status: str = _STATUS,
    reason: str = _REASON, date_from: str = _FROM, date_to: str = _TO,
) -> None:
    """Write audit events for a regulator: events, rule and template sources, manifest with the chain head.

    --from/--to select by evaluation day. The folder must be new or empty: an earlier export is
    never overwritten. Spreadsheet cells that start with = + - @ are written as text.

    Examples:

      steward audit export --out var/export-2026-06 --from 2026-06-01 --to 2026-06-30

      steward audit export --out var/export-2026-06-xlsx --format xlsx --from 2026-06-01 --to 2026-06-30
    """
    with user_errors():
        fmt = listing.choice("--format", fmt, audit.EXPORT_FORMATS, "format") or "jsonl"
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise StewardError(f"--out: {out} already exists and is not empty; choose a new folder "
                               "(an earlier export is never overwritten)")
        f = _filter(name=name, rule=rule, rule_version=rule_version, advisor=advisor, client=client, segment=segment,
                    rule_class=rule_class, channel=channel, status=status, reason=reason, date_from=date_from, date_to=date_to)
        c = cfg()
        eng = open_db(c)
        with eng.begin() as conn:
            total = audit.count_events(conn, f, c.tz) + 1  # and the export's own client.exported event
            with progress_bar("exporting", total) as bar:  # a bar on a terminal, quiet in a pipe
                task = bar.add_task("exporting audit events", total=total)
                m = audit.export(conn, out, fmt, f, c.tz, viewer(conn), progress=lambda n: bar.advance(task, n))
    console.print(f"{m['events']:,} events written to {out} ({fmt}); chain head #{m['chain_head']['seq']} "
                  f"{m['chain_head']['hash']}" + ("" if m["chain_verified"] else f"; [red]chain broken: {m['chain_problem']}[/]"),
                  highlight=False)


@app.command("check-export")
def check_export(out: Path = typer.Argument(..., exists=True, file_okay=False, help="folder written by audit export")) -> None:
    """Check an export by itself: file hashes, event hashes, and every message rendered again byte for byte.

    Example:

      steward audit check-export var/export-2026-06
    """
    with user_errors():
        res = audit.check_export(out)
    for p in res.problems:
        console.print(f"[red]problem[/] {p}", highlight=False)
    console.print(f"{res.events:,} events; {res.reproduced:,} messages rendered again identically"
                  + (f", {res.not_reproducible:,} without their rule.fired event in this export" if res.not_reproducible else ""),
                  highlight=False)
    if res.problems:
        raise typer.Exit(1)


@app.command("firings")
def firings(
    rule: str = typer.Option(None, "--rule", help="only this rule id (any case; a typo gets a did-you-mean)"),
    client: str = typer.Option(None, "--client", help="only this client id"),
    advisor: str = typer.Option(None, "--advisor", help="only the firings of this advisor's clients"),
    as_of: str = typer.Option(None, "--date", help="only this evaluation date YYYY-MM-DD"),
    status: str = typer.Option(None, "--status", help="pending, open, suppressed, sent, failed, ..."),
    limit: int = listing.limit_option(),
    page: int = listing.page_option(),
) -> None:
    """Recorded firings, newest first, a page at a time with the total.

    Examples:

      steward audit firings --rule dormant_activation

      steward audit firings --advisor A001 --page 2

      steward audit firings --client C000001 --limit 10
    """
    from engine.language.rules import rule_files
    from engine.models import Advisor, Client

    with user_errors():
        c = cfg()
        eng = open_db(c)
        day = parse_day(as_of, c, "--date") if as_of else None
        with eng.connect() as conn:
            rules = {p.stem for p in rule_files(c.rules_paths)} | set(audit.known_values(conn, "rule_id"))
            where = {
                "rule_id": listing.choice("--rule", rule, rules, "rule"),
                "client_id": _exists(conn, Client, "--client", client, "client"),
                "advisor_id": _exists(conn, Advisor, "--advisor", advisor, "advisor"),
                "as_of": day,
                "status": listing.choice("--status", status, audit.known_values(conn, "status"), "status"),
            }
            rows, total = audit.firings_page(conn, where, limit, (page - 1) * limit)
    t = Table(title="Firings, newest first", caption=listing.page_caption("firings", len(rows), total, page, limit))
    room = console.width - 78  # what the fixed columns leave for the text (rich squeezes them otherwise)
    for col, width in {"id": 5, "date": 10, "rule": 18, "client": 8, "advisor": 7, "status": 8}.items():
        t.add_column(col, overflow="ellipsis", no_wrap=True, width=width)
    if room >= 8:
        t.add_column("text", overflow="ellipsis", no_wrap=True, max_width=room)
    for r in rows:
        text = (r.message or r.error or r.reason or "").replace("\n", " ")
        cells = [str(r.id), str(r.as_of), r.rule_id, r.client_id, r.advisor_id or "", r.status]
        t.add_row(*cells, *([text[:200]] if room >= 8 else []))
    console.print(t)


def _exists(conn: Any, model: Any, option: str, value: str | None, what: str) -> str | None:
    """The id as stored (case-insensitive), or an error with the nearest id."""
    from sqlalchemy import func, select

    if value is None:
        return None
    table = model.__table__
    col = table.c.id
    found = conn.execute(select(col).where(col.in_({value, value.upper()})).limit(1)).scalar()  # by the key's index
    if found is None:
        found = conn.execute(select(col).where(func.upper(col) == value.upper()).limit(1)).scalar()
    if found is not None:
        return str(found)
    near = [r[0] for r in conn.execute(select(col).where(col.like(value[:1].upper() + "%")).limit(5000))]
    hint = did_you_mean(value.upper(), near)
    raise StewardError(f"{option}: no {what} {value!r} in the database{hint}")


@app.command("firing")
def firing(firing_id: int = typer.Argument(..., help="firing id from `steward audit firings`")) -> None:
    """One firing in full: rule version, template version, facts, rendered words.

    Example:

      steward audit firing 1
    """
    with user_errors():
        eng = open_db(cfg())
        with eng.connect() as conn:
            r = audit.get_firing(conn, firing_id)
            facts = facts_store.one(conn, r) if r is not None else {}
    if r is None:
        fail(f"no firing with id {firing_id}; `steward audit firings` shows the ids")
    t = Table(show_header=False, title=f"Firing {r.id}")
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    for k in ("as_of", "run_id", "rule_id", "rule_hash", "template_hash", "rule_class", "action_type", "channel",
              "priority", "client_id", "advisor_id", "locale", "status", "reason", "due_on", "subject", "message", "error"):
        v = getattr(r, k)
        if v is not None:
            t.add_row(k, str(v))
    t.add_row("policy", json.dumps(r.policy, ensure_ascii=False, indent=1))
    t.add_row("facts", json.dumps(facts, ensure_ascii=False, indent=1, sort_keys=True))
    if r.facts_sha256:
        t.add_row("facts_sha256", f"{r.facts_sha256} (stored once for the client's firings of the day)")
    console.print(t)


@app.command("retention")
def retention_(
    apply_: bool = typer.Option(False, "--apply", help="record the retention run in the audit log"),
    hold: str = typer.Option(None, "--hold", help="place a legal hold on this client id (needs --reason)"),
    release: int = typer.Option(None, "--release", help="release the legal hold with this id"),
    reason: str = typer.Option(None, "--reason", help="case or request reference of a legal hold"),
) -> None:
    """What retention is due under the regulator profile; legal holds; restriction of personal data.

    Reporting needs no sign-in; --apply, --hold and --release act as the signed-in compliance user.

    Examples:

      steward audit retention

      steward audit retention --hold C000001 --reason "court order 12"
    """
    from engine.audit import retention

    with user_errors():
        c = cfg()
        today = parse_day(None, c)
        eng = open_db(c)
        with eng.begin() as conn:
            user = signed_in(conn, "audit retention").name if (hold or apply_ or release is not None) else ""
            if hold:
                retention.place_hold(conn, hold, reason or "", user)
            if release is not None:
                retention.release_hold(conn, release, user)
            rep = retention.apply(conn, c, today, user) if apply_ else retention.report(conn, c, today)
    console.print(f"profile {rep.profile}: audit records are kept {rep.years} years; personal data is restricted after "
                  f"{c.audit.retention.purpose_days} days", highlight=False)
    console.print(f"{rep.events:,} events; {rep.restricted:,} restricted (masked in views); {rep.due:,} past retention "
                  f"and due for disposal (a database-owner procedure, docs/audit.md); {rep.held:,} kept by legal hold",
                  highlight=False)
    for h in rep.holds:
        console.print(f"legal hold {h.id}: client {h.client_id}, {h.reason} (by {h.placed_by}, {h.placed_at:%Y-%m-%d})",
                      highlight=False)
    if apply_:
        console.print("recorded as a retention.applied audit event", highlight=False)
