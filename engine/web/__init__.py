"""Web: the browser console (FastAPI + Jinja2 page templates + vendored htmx), served by `steward web`.

Owns sign-in pages and console sessions on top of engine.compliance.auth, the per-route role check
against engine.compliance.access.ROUTES, CSRF tokens on every form, the console's zh-CN/en Babel
catalogues (locale/), personal data masked by role (masking.py, access.PERSONAL_DATA), and the pages
for compliance (review queue, proposal diff with rule tests and impact preview, approve/reject,
approved versions), authors (`authoring`: edit, check, preview, submit), supervisors (firings, CSV and
XLSX export, firing page, charts, supervision sample, audit chain), advisors (call tasks), operators
(outbox, scheduler status, calendar overrides) and admins (users).
Page templates live in engine/web/templates/, never mixed with message templates in templates/.

May import every wing except cli and demo.
"""
