"""Who may do what: the role matrix, held as data and checked on every web route and CLI command.

An *action* names one thing a person does (`review.decide`); `ACTIONS` says which roles may do
it. Every web route (`ROUTES`) and every CLI command (`COMMANDS`) maps to one action, or to
`PUBLIC` (no sign-in: the sign-in page itself, read-only file checks) or `SERVICE` (jobs the
scheduler's service account runs: `run`, `dispatch run`, `events serve`). Tests walk the whole
matrix, so a route or command missing here fails the suite rather than being silently open.
"""

from __future__ import annotations

ROLES = ("author", "compliance", "supervisor", "advisor", "operator", "auditor", "admin")
ROLE_MEANING = {
    "author": "writes rules, templates and lint lists; submits proposals",
    "compliance": "reviews proposals; approves or rejects them (never their own)",
    "supervisor": "audits firings and sent messages; reviews the supervision sample",
    "advisor": "serves own clients: call list and outcomes",
    "operator": "runs the machinery: outbox, dead letters, retries, calendar",
    "auditor": "reads everything, changes nothing",
    "admin": "manages users and roles; can never approve",
}
_ALL = frozenset(ROLES)
_READERS = frozenset({"compliance", "supervisor", "auditor"})

ACTIONS: dict[str, frozenset[str]] = {
    "signed_in": _ALL,
    "review.submit": frozenset({"author"}),
    "review.decide": frozenset({"compliance"}),
    "review.read": frozenset({"author", "compliance", "supervisor", "auditor"}),
    "users.manage": frozenset({"admin"}),
    "users.read": frozenset({"admin", "auditor"}),
    "firings.read": _READERS,
    "supervision.decide": frozenset({"supervisor"}),
    "calls.read": frozenset({"advisor"}),
    "calls.outcome": frozenset({"advisor"}),
    "outbox.read": frozenset({"operator", "admin", "supervisor", "auditor"}),
    "outbox.retry": frozenset({"operator"}),
    "dnc.manage": frozenset({"advisor", "operator", "compliance"}),
    "calendar.manage": frozenset({"operator"}),
    "audit.retention": frozenset({"compliance"}),
    "audit.keys": frozenset({"operator", "admin"}),
}
"""Action -> the roles that may do it."""

PUBLIC = "public"
SERVICE = "service"

ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): "signed_in",
    ("GET", "/"): "signed_in",
    ("GET", "/password"): "signed_in",
    ("POST", "/password"): "signed_in",
    ("GET", "/reviews"): "review.read",
    ("GET", "/reviews/{pid}"): "review.read",
    ("POST", "/reviews/{pid}/decide"): "review.decide",
    ("GET", "/firings"): "firings.read",
    ("GET", "/firings.csv"): "firings.read",
    ("GET", "/firings/{fid}"): "firings.read",
    ("GET", "/charts"): "firings.read",
    ("GET", "/clients/{cid}"): "firings.read",
    ("GET", "/calls"): "calls.read",
    ("POST", "/calls/{entry_id}/outcome"): "calls.outcome",
    ("GET", "/outbox"): "outbox.read",
    ("POST", "/outbox/retry"): "outbox.retry",
    ("GET", "/admin/users"): "users.read",
    ("POST", "/admin/users"): "users.manage",
    ("POST", "/admin/users/{name}/roles"): "users.manage",
    ("POST", "/admin/users/{name}/password"): "users.manage",
    ("POST", "/admin/users/{name}/active"): "users.manage",
}
"""Web route (method, path template) -> action."""
ROUTES.update({  # issue 11, compliance and author pages (i11a)
    ("GET", "/reviews/{pid}/tests"): "review.read",
    ("POST", "/reviews/{pid}/impact"): "review.read",
    ("GET", "/reviews/{pid}/impact/{job}"): "review.read",
    ("GET", "/versions"): "review.read",
    ("GET", "/versions/{vid}"): "review.read",
    ("GET", "/author"): "review.submit",
    ("GET", "/author/edit"): "review.submit",
    ("POST", "/author/check"): "review.submit",
    ("POST", "/author/preview"): "review.submit",
    ("POST", "/author/save"): "review.submit",
    ("POST", "/author/submit"): "review.submit",
})

COMMANDS: dict[str, str] = {
    "login": PUBLIC, "logout": PUBLIC, "whoami": PUBLIC, "passwd": "signed_in", "web": SERVICE,
    "demo": SERVICE, "import": SERVICE, "run": SERVICE, "evaluate": PUBLIC, "why": PUBLIC,
    "scheduler": SERVICE, "outcome": "calls.outcome", "webhook": SERVICE,
    "rules check": PUBLIC, "rules test": PUBLIC, "rules list": PUBLIC, "rules backtest": PUBLIC,
    "audit list": PUBLIC, "audit show": PUBLIC, "audit verify": PUBLIC, "audit export": PUBLIC, "audit checkpoint": SERVICE,
    "audit rotate-key": "audit.keys",
    "audit check-export": PUBLIC, "audit firings": PUBLIC, "audit firing": PUBLIC,
    "audit retention": "audit.retention",
    "events post": SERVICE, "events serve": SERVICE, "events replay": SERVICE, "events list": PUBLIC,
    "events retry": SERVICE, "events check": PUBLIC, "events test": PUBLIC,
    "risk score": PUBLIC, "docs write": PUBLIC,
    "review status": PUBLIC, "review submit": "review.submit", "review list": PUBLIC,
    "review show": "review.read", "review approve": "review.decide", "review reject": "review.decide",
    "users add": "users.manage", "users grant": "users.manage", "users revoke": "users.manage",
    "users deactivate": "users.manage", "users activate": "users.manage", "users password": "users.manage",
    "users list": PUBLIC, "tokens list": "signed_in", "tokens revoke": "signed_in",
    "tasks done": "calls.outcome",
    "supervision sample": SERVICE, "supervision queue": PUBLIC, "supervision review": "supervision.decide",
    "calendar sync": SERVICE, "calendar show": PUBLIC, "calendar set": "calendar.manage",
    "calendar import": "review.submit", "calendar pending": PUBLIC, "calendar approve": "review.decide",
    "calendar reject": "review.decide",
    "dispatch run": SERVICE, "dispatch list": PUBLIC, "dispatch retry": "outbox.retry",
    "dispatch resolve": "outbox.retry",
    "dnc add": "dnc.manage", "dnc remove": "dnc.manage", "dnc list": PUBLIC,
    "report effectiveness": PUBLIC, "report branch": PUBLIC, "report effect": PUBLIC,
}
"""CLI command -> action. PUBLIC commands read files or print reports; SERVICE commands are the
machinery a deployment runs under its service account (the scheduler), not a person's decision."""


def roles_for(action: str) -> frozenset[str] | None:
    """The roles allowed to do `action`; None when no sign-in is needed."""
    if action in (PUBLIC, SERVICE):
        return None
    return ACTIONS[action]


def allowed(action: str, roles: frozenset[str]) -> bool:
    need = roles_for(action)
    return need is None or bool(need & roles)


# ------------------------------------------------------------------ supervision and operations pages

ACTIONS.update({
    "supervision.read": frozenset({"supervisor", "compliance", "auditor"}),
    "audit.read": frozenset({"supervisor", "compliance", "auditor"}),
    "scheduler.read": frozenset({"operator", "admin", "auditor"}),
})
ROUTES.update({
    ("GET", "/firings.xlsx"): "firings.read",
    ("GET", "/supervision"): "supervision.read",
    ("POST", "/supervision/decide"): "supervision.decide",
    ("GET", "/audit/chain"): "audit.read",
    ("GET", "/scheduler"): "scheduler.read",
    ("GET", "/calendar"): "scheduler.read",
    ("POST", "/calendar"): "calendar.manage",
    ("POST", "/calendar/remove"): "calendar.manage",
})

PERSONAL_DATA: dict[str, frozenset[str]] = {
    "client_name": frozenset({"advisor", "supervisor", "compliance"}),
    "client_id": frozenset({"advisor", "supervisor", "compliance", "auditor"}),
    "birth_date": frozenset({"supervisor", "compliance"}),
    "contact": frozenset(),
}
"""Personal data the console shows in full, by kind -> the roles that see it so. Everyone else sees
it partly masked (engine.web.masking): names keep their first character (张**), client ids their
first two and last two (C0****17), birth dates their year; phones and e-mail addresses are masked
for every role (138****0003). Held as data beside the route matrix; docs/console.md prints it."""
