"""The activations.yaml schema: typed models, cross-reference checks and load errors.

The file is validated when the code location loads. Every problem is reported as a
``ConfigError`` naming the file, the entry (``activations.products_to_batch``), the field
and what is allowed, so a broken file never surfaces as a bare traceback.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from dagster import ScheduleDefinition
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from activation_pipeline.column_types import column_type_problem
from activation_pipeline.config_file import (
    UNION_TAGS,
    ConfigError,
    describe_error,
    most_specific,
    read_document,
)
from activation_pipeline.config_references import (
    check_identifiers,
    check_references,
    check_run_order,
)
from activation_pipeline.sql_identifiers import identifier_problem

DEFAULT_CONFIG = Path("data/activations.yaml")
SCHEDULE_PRESETS = {
    "hourly": "0 * * * *",
    "daily": "0 2 * * *",
    "every_6_hours": "0 */6 * * *",
    "weekly": "0 3 * * 0",
}
Mode = Literal["full_then_delta", "full_only"]
Operation = Literal["upsert", "mirror", "delete_only", "update_only"]
ALLOWED_OPERATIONS: dict[str, frozenset[str]] = {
    "full_then_delta": frozenset({"upsert", "mirror", "update_only"}),
    "full_only": frozenset({"upsert", "delete_only", "update_only"}),
}


def _timezone(value: str) -> str:
    try:
        if value not in ("UTC", "utc"):  # Dagster reads both as UTC and any other name from the IANA database, as here
            ZoneInfo(value)
    except Exception:  # ZoneInfoNotFoundError, ValueError, or an OSError for a folder name such as "Europe"
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. UTC, Europe/Paris)") from None
    return value


def _is_cron(value: str) -> bool:
    """Whether Dagster will take ``value`` as a schedule's cron (checked here, where the file and field are known)."""
    try:
        with warnings.catch_warnings():  # an out-of-range interval warns again where the real schedule is built
            warnings.simplefilter("ignore")
            ScheduleDefinition(name="cron_check", cron_schedule=value, job_name="cron_check")  # Dagster's own check, public
        return True
    except Exception:  # DagsterInvalidDefinitionError, or the cron parser's own errors on garbage
        return False


def _column_type(value: str) -> str:
    if problem := column_type_problem(value):
        raise ValueError(problem)
    return value


# Dagster's own rule for asset owners (an email address, or a team as ``team:<name>``), checked here to name the entry
_OWNER_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,7}")


def _owner(value: str) -> str:
    if not (_OWNER_EMAIL.fullmatch(value) or (value.startswith("team:") and value[5:].strip())):
        raise ValueError(f"{value!r} is not an owner: give an email address (someone@example.com) or a team as team:<name> (team:marketing)")
    return value


Owners = list[Annotated[str, AfterValidator(_owner)]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class DatabaseSourceConfig(_Model):
    """A table or a query of an external PostgreSQL database, read through ADBC (activation_pipeline/assets/database_sources.py)."""

    url_env: str = Field(description="the environment variable holding the postgresql:// URL (the URL itself is never in the config)")
    table: str | None = Field(default=None, description="schema.table to read whole")
    query: str | None = Field(default=None, description="a SELECT whose result is the source")

    @field_validator("url_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if "://" in value or "@" in value:  # a URL pasted here: never echoed, it may hold a password
            raise ValueError("holds what looks like a URL; give the name of the environment variable that holds it, e.g. CRM_DATABASE_URL")
        if not _ENV_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not an environment variable name (letters, digits and _, not starting with a digit); "
                "give the variable's name, e.g. CRM_DATABASE_URL, never the URL itself"
            )
        return value

    @field_validator("table")
    @classmethod
    def _schema_dot_table(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 2 or not all(parts) or any(identifier_problem(part) for part in parts):
            problem = next((identifier_problem(part) for part in parts if identifier_problem(part)), None)
            detail = f": a name {problem}" if problem else ""
            raise ValueError(f"{value!r} is not schema.table (one dot between two names, e.g. public.customers){detail}")
        return value

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the query is empty; give a SELECT statement")
        return value

    @model_validator(mode="after")
    def _table_or_query(self) -> DatabaseSourceConfig:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table (schema.table) or query (a SELECT), not " + ("both" if self.table else "neither"))
        return self

    @property
    def label(self) -> str:
        return f"table {self.table}" if self.table else "query"


class SourceConfig(_Model):
    path: str | None = Field(default=None, description="CSV or Parquet file, relative to the config file's folder")
    database: DatabaseSourceConfig | None = Field(default=None, description="instead of a file: a table or query of a PostgreSQL database")
    format: Literal["csv", "parquet"] | None = None
    description: str = ""
    partition_column: str | None = Field(
        default=None, description="a date/timestamp column: the source is partitioned by its day (needs partitions.start_date)"
    )
    columns: dict[str, Annotated[str, AfterValidator(_column_type)]] = Field(
        default_factory=dict, description="column -> declared type (see the README); undeclared columns are inferred"
    )
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="CSV field separator, one character, e.g. ';' or a tab")

    @field_validator("path")
    @classmethod
    def _stays_in_config_folder(cls, value: str) -> str:
        if not Path(value).is_absolute() and ".." in re.split(r"[/\\]", value):
            raise ValueError(
                f"{value!r}: a relative path may not contain '..' (it would leave the config file's folder); "
                "give an absolute path for a file elsewhere"
            )
        return value

    @field_validator("database")
    @classmethod
    def _database_alone(cls, value: DatabaseSourceConfig | None, info: ValidationInfo) -> DatabaseSourceConfig | None:
        if value is not None and info.data.get("path") is not None:
            raise ValueError("a source is either a file (path) or a database table or query (database), not both")
        return value

    @model_validator(mode="after")
    def _file_or_database(self) -> SourceConfig:
        if self.database is None:
            if self.path is None:
                raise PydanticCustomError(
                    "file_or_database", "give path (a CSV or Parquet file) or database (a table or query of a PostgreSQL database)"
                )
            return self
        for field, value in (("format", self.format), ("partition_column", self.partition_column)):
            if value is not None:
                raise PydanticCustomError("database_source", f"{field} applies to file sources only, not to a database source")
        if self.delimiter != ",":
            raise PydanticCustomError("database_source", "delimiter applies to CSV sources only, not to a database source")
        return self

    @property
    def file_format(self) -> str:
        if self.database is not None:
            return "postgres"
        return self.format or ("parquet" if str(self.path).endswith(".parquet") else "csv")


class SegmentConfig(_Model):
    sql: str
    primary_key: str
    description: str = ""
    partition_column: str | None = Field(
        default=None, description="the output column holding each row's day; defaults to the partitioned source's column"
    )
    owners: Owners = Field(default_factory=list, description="the segment asset's owners in Dagster: emails or team:<name>")

    @property
    def sql_hash(self) -> str:
        normalised = " ".join(self.sql.split()).lower()
        return hashlib.sha256(normalised.encode()).hexdigest()[:16]

    def referenced_tables(self, schema: str) -> set[str]:
        return set(re.findall(rf"\b{schema}\.([a-z][a-z0-9_]*)\b", self.sql, flags=re.IGNORECASE))


class DestinationConfig(_Model):
    platform: str
    base_url: str | None = Field(default=None, description="overrides <PLATFORM>_BASE_URL; unset: the sandbox")
    secrets: dict[str, str] = Field(default_factory=dict, description="secret name -> environment variable holding it")
    settings: dict[str, Any] = Field(default_factory=dict, description="the platform's settings: its resource model's fields")

    @field_validator("settings")
    @classmethod
    def _platform_settings(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Validated by the platform's own resource model (plain pydantic: an error names settings.<field>)."""
        from activation_pipeline.platforms import PLATFORMS

        spec = PLATFORMS.get(info.data.get("platform", ""))
        if spec is None:
            return value  # the platform itself is refused with the list of platforms (config_references)
        unknown = sorted(set(value) - set(spec.settings))
        if unknown:  # named at settings.<name>, with what the platform takes
            refusal = PydanticCustomError(
                "unknown_setting", "unknown setting; {platform} takes {allowed}", {"platform": spec.name, "allowed": ", ".join(spec.settings)}
            )
            raise ValidationError.from_exception_data("settings", [{"type": refusal, "loc": (name,), "input": value[name]} for name in unknown])
        spec.resource(**value)  # its field types, bounds and validators (a region, a collection name, a template)
        return value


class CronSchedule(_Model):
    cron: str
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if not _is_cron(value):
            raise ValueError(f"{value!r} is not a valid 5-field cron expression")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return _timezone(value)


class ScopeConfig(_Model):
    """Store views (or any column's values) an activation is split by: each its own snapshot partition."""

    column: str = Field(description="segment column holding the scope of each row, e.g. store_view")
    values: list[str] = Field(min_length=1, description="the scopes synced; rows with other values are not sent")

    @field_validator("values")
    @classmethod
    def _distinct(cls, values: list[str]) -> list[str]:
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"{repeated[0]!r} is listed twice; each scope once")
        for value in values:  # a scope names journal and lock files: no path separators
            if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", value):
                raise ValueError(f"{value!r}: scope values allow letters, digits, '_', '-' and '.' (not first)")
        return values


class ActivationConfig(_Model):
    segment: str
    destination: str
    object: str = Field(description="the platform object: catalog name, list, collection…")
    title: str = ""
    mode: Mode = "full_then_delta"
    operation: Operation = "upsert"
    identifier: str | None = Field(default=None, description="segment column sent as the platform id")
    mapping: dict[str, str] = Field(default_factory=dict, description="platform field: segment column")
    custom_attributes: list[str] = Field(default_factory=list)
    schedule: str | CronSchedule | None = None
    full_resync_schedule: str | CronSchedule | None = Field(
        default=None, description="optional schedule of full resyncs (resend everything, delete nothing), e.g. weekly"
    )
    verification_schedule: str | CronSchedule | None = Field(
        default=None, description="platforms that read back (Connectif): when every record is verified; default 04:00 UTC daily"
    )
    enabled: bool = True
    continuous: bool = Field(default=False, description="sync as soon as its source files change (Dagster's automation, checked every 30 s)")
    max_items_per_request: int | None = Field(default=None, ge=1)
    concurrency: int = Field(default=4, ge=1, le=32)
    max_delete_fraction: float = Field(default=0.2, ge=0.0, le=1.0)
    options: dict[str, Any] = Field(default_factory=dict, description="platform-specific options of this activation")
    scope: ScopeConfig | None = Field(
        default=None, description="sync each listed value of a column (e.g. store view) as its own partition: own snapshot and ledger rows"
    )
    after: list[str] = Field(
        default_factory=list, description="activations that run before this one in a run selecting both (e.g. contacts before their orders)"
    )
    nulls: Literal["send", "omit"] | None = Field(
        default=None,
        description="a null mapped value: send it as the platform's null/clear, or omit the field (the platform "
        "keeps its value); default per platform (README, platform operations)",
    )
    owners: Owners = Field(default_factory=list, description="the activation asset's owners in Dagster: emails or team:<name>")

    @model_validator(mode="after")
    def _operation_fits_mode(self) -> ActivationConfig:
        if self.operation not in ALLOWED_OPERATIONS[self.mode]:
            allowed = ", ".join(sorted(ALLOWED_OPERATIONS[self.mode]))
            raise ValueError(f"operation {self.operation!r} is not available in mode {self.mode!r}; allowed: {allowed}")
        return self

    @field_validator("schedule", "full_resync_schedule", "verification_schedule")
    @classmethod
    def _known_schedule(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in SCHEDULE_PRESETS and not _is_cron(value):
            presets = ", ".join(SCHEDULE_PRESETS)
            raise ValueError(f"{value!r} is neither a preset ({presets}) nor a valid 5-field cron")
        return value

    @property
    def cron(self) -> tuple[str, str] | None:
        """(cron expression, timezone) of incremental syncs, or None when not scheduled."""
        return _cron_of(self.schedule)

    @property
    def full_resync_cron(self) -> tuple[str, str] | None:
        return _cron_of(self.full_resync_schedule)

    @property
    def verification_cron(self) -> tuple[str, str]:
        return _cron_of(self.verification_schedule) or ("0 4 * * *", "UTC")  # off-peak by default

    @property
    def auto_synced(self) -> bool:
        return self.enabled and self.schedule is not None

    def sent_columns(self, primary_key: str) -> dict[str, str]:
        """Platform field -> segment column for every value sent (identifier excluded)."""
        fields = dict(self.mapping)
        fields.update({column: column for column in self.custom_attributes})
        return fields


def _cron_of(schedule: str | CronSchedule | None) -> tuple[str, str] | None:
    if schedule is None:
        return None
    if isinstance(schedule, CronSchedule):
        return schedule.cron, schedule.timezone
    return SCHEDULE_PRESETS.get(schedule, schedule), "UTC"


class PartitionsConfig(_Model):
    start_date: date = Field(description="first day of the daily partitions shared by partitioned sources, segments and activations")
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return _timezone(value)


class DeploymentsConfig(_Model):
    """Which deployments may push to a real platform (a loopback sandbox is always allowed)."""

    branch: Literal["dry_run", "live"] = Field(
        default="dry_run",
        description="a Dagster+ branch deployment ($DAGSTER_CLOUD_IS_BRANCH_DEPLOYMENT=1): dry_run plans and reports "
        "without sending (the default); live pushes as production does",
    )
    dry_run_deployments: list[str] = Field(
        default_factory=list, description="Dagster+ deployment names ($DAGSTER_CLOUD_DEPLOYMENT_NAME), e.g. staging, that never push"
    )


class ProjectConfig(_Model):
    partitions: PartitionsConfig | None = None
    deployments: DeploymentsConfig = Field(default_factory=DeploymentsConfig)
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    segments: dict[str, SegmentConfig] = Field(default_factory=dict)
    destinations: dict[str, DestinationConfig] = Field(default_factory=dict)
    activations: dict[str, ActivationConfig] = Field(default_factory=dict)
    ledger_retention_days: int | None = Field(
        default=None, ge=1, description="record payloads and messages older than this many days are dropped (counts stay)"
    )
    path: Path = Path(".")

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def segment_partition_column(self, name: str) -> str | None:
        """The day column of a partitioned segment (one reading a partitioned source or segment), else None."""
        segment = self.segments[name]
        upstream = [self.sources[t].partition_column for t in sorted(segment.referenced_tables("sources")) if self.sources[t].partition_column]
        upstream += [self.segment_partition_column(t) for t in sorted(segment.referenced_tables("segments")) if self.segment_partition_column(t)]
        if not upstream:
            return None
        return segment.partition_column or upstream[0]

    def activation_partition_column(self, name: str) -> str | None:
        return self.segment_partition_column(self.activations[name].segment)

    def source_path(self, name: str) -> Path:
        """A file source's file (a database source has none: ValueError)."""
        file = self.sources[name].path
        if file is None:
            raise ValueError(f"sources.{name} is a database source, not a file")
        path = Path(file)
        return path if path.is_absolute() else self.base_dir / path


def config_path() -> Path:
    return Path(os.environ.get("ACTIVATION_CONFIG", DEFAULT_CONFIG))


def load_config(path: Path | str | None = None) -> ProjectConfig:
    """Read, validate and cross-check the config file; raise ConfigError on any problem."""
    path = Path(path) if path is not None else config_path()
    return validate_config(read_document(path), path)


def validate_config(raw: Any, path: Path) -> ProjectConfig:
    """Validate and cross-check one config document (``activations.yaml``'s content, or a component's
    attributes) whose relative paths are relative to ``path``'s folder; raise ConfigError on any problem."""
    if not isinstance(raw, dict):
        raise ConfigError(path, "", "", "the file must be a mapping with sources, segments, destinations, activations")
    if "path" in raw:  # ProjectConfig.path is set from the file's location, never from its content
        raise ConfigError(path, "path", "", describe_error({"type": "extra_forbidden"}))
    try:
        config = ProjectConfig.model_validate({**raw, "path": path})
    except ValidationError as exc:
        error = most_specific(exc.errors())
        location = [
            str(part)
            for i, part in enumerate(error["loc"])
            if not (i == 3 and error["loc"][2] in ("schedule", "full_resync_schedule") and part in UNION_TAGS)
        ]
        entry = ".".join(location[:2])
        field = ".".join(location[2:])
        raise ConfigError(path, entry, field, describe_error(error)) from None
    check_references(config)
    check_run_order(config)
    check_identifiers(config)
    return config
