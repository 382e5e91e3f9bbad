"""The console's words in zh-CN and en: gettext message catalogues kept with Babel.

The catalogues are `engine/web/locale/<locale>/LC_MESSAGES/messages.po` (the msgid is the English
text; `en` leaves msgstr empty and shows the msgid). They are read once per process with
`babel.messages.pofile.read_po`, so there is no compile step to forget. Templates call `_("...")`;
the words they translate by value (`_(p.status)`, `_(o)`) are marked here with `N_` so extraction
finds them. To add or change words (docs/console.md):

    .venv/bin/pybabel extract -F babel.cfg -k N_ --no-location --sort-output -w 120 -o engine/web/locale/messages.pot .
    .venv/bin/pybabel update -i engine/web/locale/messages.pot -d engine/web/locale -w 120 --ignore-obsolete

then fill the new msgstr in zh_CN; tests/test_web_i18n.py fails while a msgid has no translation.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from babel.messages.pofile import PoFileError, read_po

from engine.errors import StewardError

LOCALES = ("en", "zh-CN")
CATALOGUES = Path(__file__).parent / "locale"
BABEL_LOCALE = {"en": "en", "zh-CN": "zh_CN"}
"""Console language (URL, cookie, Accept-Language) -> Babel locale (the catalogue's folder)."""


def N_(s: str) -> str:  # noqa: N802 - the gettext convention for "mark, translate later"
    return s


TRANSLATED_BY_VALUE = (
    # proposal states (reviews.html, proposal.html)
    N_("submitted"), N_("approved"), N_("rejected"), N_("refused"),
    # call outcomes (calls.html; engine.servicing.task_outcomes.OUTCOMES)
    N_("reached"), N_("positive"), N_("declined"), N_("wrong_number"), N_("no_answer"), N_("callback_later"),
    # supervision decisions (supervision.html; engine.supervision.sampling.DECISIONS)
    N_("ok"), N_("follow_up"), N_("escalate"),
    # the sign-in page's refusal (app.py)
    N_("Sign-in refused: wrong user name or password, or the account is locked."),
)


def catalogue_path(locale: str) -> Path:
    return CATALOGUES / BABEL_LOCALE[locale] / "LC_MESSAGES" / "messages.po"


@lru_cache(maxsize=len(LOCALES))
def translator(locale: str) -> dict[str, str]:
    """msgid -> translation for `locale` (English: empty, so every msgid shows as itself)."""
    if locale not in BABEL_LOCALE:
        return {}
    path = catalogue_path(locale)
    try:
        with path.open("rb") as f:
            cat = read_po(f, locale=BABEL_LOCALE[locale], abort_invalid=True)
    except (OSError, PoFileError) as e:
        raise StewardError(f"{path}: cannot read the console's {locale} catalogue: {e}; reinstall Steward or "
                           "restore the file from git") from e
    return {m.id: m.string for m in cat if isinstance(m.id, str) and m.id and isinstance(m.string, str)
            and m.string and not m.fuzzy}


def pick(query: str | None, cookie: str | None, accept: str | None) -> str:
    """?lang=, then the lang cookie, then Accept-Language; English otherwise."""
    for v in (query, cookie):
        if v in LOCALES:
            return v
    return "zh-CN" if (accept or "").lower().startswith("zh") else "en"
