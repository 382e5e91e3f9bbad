"""Configuration: `config.yaml` parsed once into frozen, validated models.

Defaults live here, in the models. Every key is documented in docs/config.md;
a test fails when a key is missing from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.config.dispatch import DispatchConfig
from engine.errors import Problem, SourceErrors, did_you_mean, rel
from engine.config.events import EventsConfig
from engine.config.servicing import ServicingConfig
from engine.yamlio import LineDict, line_of, load_file

LOCALES = ("zh-CN", "zh-TW", "en", "es")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Model):
    url: str = "sqlite:///var/steward.db"
    """SQLAlchemy URL. SQLite paths are relative to the config file's folder."""
    echo: bool = False


class SegmentThresholds(_Model):
    """Value x activity grid of DOMAIN.md: m > n on market value, w > v on 20-day volume."""

    value_high: float = 500_000.0
    value_low: float = 50_000.0
    volume_high: float = 1_000_000.0
    volume_low: float = 10_000.0
    new_account_days: int = Field(30, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> SegmentThresholds:
        if self.value_high <= self.value_low:
            raise ValueError("value_high must be greater than value_low")
        if self.volume_high <= self.volume_low:
            raise ValueError("volume_high must be greater than volume_low")
        return self


class CalendarConfig(_Model):
    exchange: str = "XSHG"
    """exchange-calendars code whose sessions are the trading days."""


class FirmLocale(_Model):
    """What a client reading one language sees; a key left out falls back to `firm.<key>`."""

    name: str | None = None
    signature: str | None = None
    opt_out: str | None = None


class FirmConfig(_Model):
    name: str = "示例证券"
    signature: str = "【示例证券】"
    """SMS signature required on Chinese marketing messages."""
    opt_out: str = ""
    """The opt-out line templates may show (`{{ firm.opt_out }}`)."""
    locales: dict[str, FirmLocale] = {}
    """Per message locale (zh-CN, zh-TW, en, es): name, signature and opt-out line for that language."""

    @field_validator("locales")
    @classmethod
    def _known_locales(cls, v: dict[str, FirmLocale]) -> dict[str, FirmLocale]:
        unknown = sorted(set(v) - set(LOCALES))
        if unknown:
            raise ValueError(f"unknown locale(s) {', '.join(unknown)}: use {', '.join(LOCALES)}")
        return v

    def for_locale(self, locale: str) -> dict[str, str]:
        """name, signature and opt_out as a client reading `locale` sees them."""
        base = {"name": self.name, "signature": self.signature, "opt_out": self.opt_out}
        over = self.locales.get(locale)
        return {k: (getattr(over, k) if over and getattr(over, k) is not None else v) for k, v in base.items()}


class EvaluationConfig(_Model):
    batch_size: int = Field(2_000, ge=100)
    """Clients per batch in the nightly evaluation. Peak memory is about 60 KB per client of a
    batch (the batch's facts, decisions, rendered messages and audit rows), whatever the book's
    size; from 1,000 up the speed is the same (bench/results/issue-16.md, session 3)."""
    activity_days: int = Field(20, ge=1)
    """Trading days counted by the *_20d activity facts."""
    workers: int = Field(1, ge=0)
    """Processes the scheduler's nightly run uses on its machine (0: one per core)."""
    shard_jobs: int = Field(0, ge=0)
    """PostgreSQL only: > 0 splits the scheduler's nightly run into this many procrastinate jobs
    for shard workers on any machine (`python -m scheduler.distributed worker`); 0: run locally."""
    shard_jobs_min_clients: int = Field(1000, ge=1)
    """Fewest clients a shard job gets: a smaller book is split into fewer jobs than `shard_jobs`."""
    shard_jobs_wait_minutes: int = Field(120, ge=1)
    """How long the scheduler leader waits for the shard jobs before reporting the night failed."""


class ComplianceConfig(_Model):
    lists_dir: str = "compliance"
    """Folder of the lint lists (prohibited phrases, required elements, masked variables)."""
    assessment_validity_months: int = Field(default=24, ge=1, le=120)
    """A risk assessment older than this blocks product promotions (suitability gate)."""
    senior_age: int = Field(default=65, ge=0, le=150)
    """Clients this age or older get stricter suitability (COMPLIANCE.md section 7)."""
    senior_max_product_risk: Literal["R1", "R2", "R3", "R4", "R5"] = "R3"
    """Highest product risk proactively offered to senior clients; R5 turns the extra check off."""
    approved_dir: str = "var/approved"
    """Where approved snapshots are unpacked from the database to run."""
    acting_user: str | None = None
    """No longer used (identity comes from `steward login` or a console sign-in); kept so older files load."""


class SupervisionConfig(_Model):
    """Daily risk-based sample of sent messages and completed tasks for supervisory review."""

    marketing_rate: float = Field(0.10, ge=0, le=1)
    service_rate: float = Field(0.02, ge=0, le=1)
    task_rate: float = Field(0.05, ge=0, le=1)
    high_risk_rate: float = Field(0.50, ge=0, le=1)
    """Applies instead of the others when the client is high-risk (see high_risk_age)."""
    high_risk_age: int = Field(65, ge=0)
    high_risk_rules: tuple[str, ...] = ()
    """Rule ids whose firings always count as high-risk (e.g. margin offers)."""
    sent_statuses: tuple[str, ...] = ("sent", "delivered")
    done_statuses: tuple[str, ...] = ("done",)
    review_days: int = Field(3, ge=1)
    """A review not decided this many days after sampling is overdue."""


class RetentionConfig(_Model):
    years: dict[Literal["cn", "us", "eu"], int] = {"cn": 20, "us": 6, "eu": 7}
    """Years audit records are kept, per regulator profile (eu: 5 to 7 by member state)."""
    aml_years: int = Field(10, ge=1)
    """Years AML-related records are kept (outflow and retention events)."""
    aml_rules: tuple[str, ...] = ()
    """Rule ids whose records count as AML data."""
    purpose_days: int = Field(1095, ge=1)
    """After this many days personal data in audit records is restricted (masked in views)."""


class AuditConfig(_Model):
    supervision: SupervisionConfig = SupervisionConfig()
    retention: RetentionConfig = RetentionConfig()
    checkpoint_file: str = "var/audit-checkpoints.jsonl"
    """File outside the database where the daily chain-head checkpoint is appended; `audit verify` checks the latest."""
    checkpoint_url: str | None = None
    """External append-only store (HTTP notary) each checkpoint is also posted to; `audit verify` checks its latest."""
    checkpoint_token_env: str | None = None
    """Environment variable holding a bearer token for the notary."""
    checkpoint_timeout_seconds: float = Field(10.0, gt=0)
    """Timeout of each request to the notary."""


class Config(_Model):
    database: DatabaseConfig = DatabaseConfig()
    timezone: str = "Asia/Shanghai"
    default_locale: Literal["zh-CN", "zh-TW", "en", "es"] = "zh-CN"
    regulator_profile: Literal["cn", "us", "eu"] = "cn"
    rules_dirs: tuple[str, ...] = ("rules",)
    templates_dir: str = "templates"
    calendar: CalendarConfig = CalendarConfig()
    segments: SegmentThresholds = SegmentThresholds()
    firm: FirmConfig = FirmConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    servicing: ServicingConfig = ServicingConfig()
    dispatch: DispatchConfig = DispatchConfig()
    compliance: ComplianceConfig = ComplianceConfig()
    audit: AuditConfig = AuditConfig()
    events: EventsConfig = EventsConfig()
    base_dir: Path = Field(default=Path("."), exclude=True)
    """Folder of the config file; relative paths resolve against it (not a YAML key)."""
    source: Path | None = Field(default=None, exclude=True)
    """The file it was read from, so governed keys can be located by line (not a YAML key)."""

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown IANA timezone {v!r}") from e
        return v

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def path(self, p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else self.base_dir / q

    @property
    def rules_paths(self) -> list[Path]:
        return [self.path(d) for d in self.rules_dirs]

    @property
    def templates_path(self) -> Path:
        return self.path(self.templates_dir)

    @property
    def database_url(self) -> str:
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str((self.base_dir / url[len(prefix):]).resolve())
        return url


def _problems_from_validation(e: ValidationError, data: Any, path: str) -> list[Problem]:
    problems = []
    for err in e.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            parent: Any = data
            for part in loc[:-1]:
                parent = parent.get(part, {}) if isinstance(parent, dict) else {}
            model: Any = Config
            for part in loc[:-1]:
                field = model.model_fields.get(part) if isinstance(part, str) else None
                model = field.annotation if field is not None else None
                if model is None or not hasattr(model, "model_fields"):
                    break
            known = list(model.model_fields) if model is not None and hasattr(model, "model_fields") else []
            msg = f"unknown key '{loc[-1]}'{did_you_mean(str(loc[-1]), known)}"
        elif "input" in err and not isinstance(err["input"], dict):
            msg = f"{msg} (got {err['input']!r})"
        problems.append(Problem(path, line_of(data, loc), key, msg))
    return problems


def parse_config(data: Any, path: str = "config.yaml", base_dir: Path | None = None) -> Config:
    if data is None:
        data = LineDict()
    if not isinstance(data, dict):
        raise SourceErrors([Problem(path, 1, "", "config must be a mapping of keys")])
    if inner := [k for k in ("base_dir", "source") if k in data]:
        raise SourceErrors([Problem(path, line_of(data, (k,)), k, f"unknown key '{k}'") for k in inner])
    try:
        cfg = Config.model_validate({**data, "base_dir": base_dir or Path(".")})
    except ValidationError as e:
        raise SourceErrors(_problems_from_validation(e, data, path)) from e
    return cfg


def load_config(path: Path | str | None = None) -> Config:
    """Load config.yaml (or the given file). A missing default file means all defaults."""
    p = Path(path) if path is not None else Path("config.yaml")
    if not p.exists():
        if path is not None:
            raise SourceErrors([Problem(rel(p), None, "", "config file not found")])
        return Config(base_dir=Path.cwd())
    data = load_file(p)
    return parse_config(data, rel(p), p.resolve().parent).model_copy(update={"source": p})
