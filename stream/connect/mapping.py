"""The mapping file: what each destination is told about a stage change, and in which fields.

A YAML file (`--mapping FILE`, or `LEADSTREAM_CONNECT_MAPPING_FILE`) with one optional section per
destination; whatever it leaves out keeps its default:

    hubspot:
      id_property: email            # or a unique contact property holding the lead id
      lifecyclestage: {recycled: lead, disqualified: null}   # null: leave the property alone
      hs_lead_status: {mql: OPEN, sql: IN_PROGRESS}
      properties: {score: leadstream_score, grade: leadstream_grade, stage: leadstream_stage}
      models:                       # only these models' stage changes (default: every model)
        b2b: {}
        consumer: {properties: {score: consumer_score}}
      companies:                    # account stage changes (`connect hubspot --accounts`)
        id_property: leadstream_account_id   # a unique company property holding the account id
        lifecyclestage: {mqa: marketingqualifiedlead, engaged: null}
        properties: {score: leadstream_account_score, stage: leadstream_account_stage}
    salesforce:
      external_id_field: Leadstream_Lead_Id__c
      status: {sql: Working - Contacted}
      fields: {score: Leadstream_Score__c}
      accounts:                     # account stage changes (`connect salesforce --accounts`)
        external_id_field: Leadstream_Account_Id__c
        fields: {score: Leadstream_Account_Score__c, stage: Leadstream_Account_Stage__c}
    mautic:
      match_field: email
      segments: {mql: 3, sql: 4, recycled: 7}
      remove_from_previous: true

Stage maps are merged over the defaults stage by stage. A mistake is reported with the file, the
line, the key and, for a misspelt key or stage, the closest valid name.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.stages import (
    HUBSPOT_LIFECYCLESTAGE,
    SALESFORCE_LEAD_STATUS,
    AccountStage,
    HubspotLifecycleStage,
    Stage,
)
from stream.errors import ConfigurationError

__all__ = [
    "HUBSPOT_COMPANY_LIFECYCLESTAGE",
    "HUBSPOT_LIFECYCLE_ORDER",
    "AccountFields",
    "ConnectMapping",
    "HubspotCompanies",
    "HubspotMapping",
    "MappingError",
    "MappingSection",
    "MauticMapping",
    "SalesforceAccounts",
    "SalesforceMapping",
    "ScoreFields",
    "email_of",
    "load_mapping",
    "mapping_from",
    "parse_mapping",
]

HUBSPOT_LIFECYCLE_ORDER: tuple[str, ...] = get_args(HubspotLifecycleStage)
"""HubSpot's default lifecycle stages, first to last: a move to an earlier one is backwards."""

HUBSPOT_LEAD_STATUS: dict[Stage, str | None] = {
    Stage.SUBSCRIBER: "NEW",
    Stage.LEAD: "NEW",
    Stage.MQL: "OPEN",
    Stage.SQL: "IN_PROGRESS",
    Stage.OPPORTUNITY: "OPEN_DEAL",
    Stage.CUSTOMER: None,
    Stage.EVANGELIST: None,
    Stage.RECYCLED: "BAD_TIMING",
    Stage.DISQUALIFIED: "UNQUALIFIED",
    Stage.OTHER: None,
}
"""Stage → HubSpot `hs_lead_status` (its default options); `None` leaves the status alone."""

HUBSPOT_COMPANY_LIFECYCLESTAGE: dict[AccountStage, str | None] = {
    AccountStage.TARGET: None,
    AccountStage.ENGAGED: None,
    AccountStage.MQA: "marketingqualifiedlead",
    AccountStage.OPPORTUNITY: "opportunity",
    AccountStage.CUSTOMER: "customer",
}
"""Account stage → the company's `lifecyclestage`; `None` leaves the property alone."""

PropertyName = str
_PROPERTY = r"^[A-Za-z][A-Za-z0-9_]{0,99}$"


class MappingError(ConfigurationError):
    """The mapping file is missing, not YAML, or does not validate."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScoreFields(_Strict):
    """The destination's field for each score value; `null` does not send that value."""

    score: PropertyName | None = Field(None, pattern=_PROPERTY)
    """The total score."""
    fit: PropertyName | None = Field(None, pattern=_PROPERTY)
    engagement: PropertyName | None = Field(None, pattern=_PROPERTY)
    grade: PropertyName | None = Field(None, pattern=_PROPERTY)
    stage: PropertyName | None = Field(None, pattern=_PROPERTY)
    model: PropertyName | None = Field(None, pattern=_PROPERTY)
    """The scoring model that made the change."""

    def values(self, change: Any) -> dict[str, str | float]:
        """`{field: value}` for a `StageChanged` record, configured fields only."""
        score = change.score
        candidates: dict[str | None, str | float] = {
            self.score: score.total,
            self.fit: score.fit,
            self.engagement: score.engagement,
            self.grade: score.grade,
            self.stage: change.to_stage.value,
            self.model: change.model,
        }
        return {name: value for name, value in candidates.items() if name is not None}


class AccountFields(_Strict):
    """The destination's field for each value of an account stage change; `null` does not send
    that value."""

    score: PropertyName | None = Field(None, pattern=_PROPERTY)
    """The account's score when it changed stage."""
    stage: PropertyName | None = Field(None, pattern=_PROPERTY)
    """The account stage (`target`, `engaged`, `mqa`, `opportunity`, `customer`)."""
    model: PropertyName | None = Field(None, pattern=_PROPERTY)
    """The scoring model whose engagement rolled up to the account."""

    def values(self, change: Any) -> dict[str, str | float]:
        """`{field: value}` for an `AccountStageChanged` record, configured fields only."""
        candidates: dict[str | None, str | float] = {
            self.score: change.score,
            self.stage: change.to_stage.value,
            self.model: change.model,
        }
        return {name: value for name, value in candidates.items() if name is not None}


def _merge_field_defaults(model: type[BaseModel], data: Any, key: str) -> Any:
    """`data` with its `key` field map merged over the default names (`null` drops one)."""
    if isinstance(data, dict) and isinstance(data.get(key), dict):
        default = model.model_fields[key].default.model_dump()
        data = {**data, key: {**default, **data[key]}}
    return data


def _stage_map(defaults: Mapping[Any, Any], given: Mapping[Any, Any] | None) -> dict[Any, Any]:
    return {**defaults, **(given or {})}


class MappingSection(_Strict):
    """What every destination's section has: the models it delivers and per-model overrides."""

    models: dict[str, dict[str, Any]] | None = None
    """Model id → overrides of this section; `None` delivers every model's changes unchanged."""

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, data: Any) -> Any:
        """A `models` list is models without overrides; given score fields merge over the
        default names (`null` drops one)."""
        if not isinstance(data, dict):
            return data
        if isinstance(data.get("models"), list):
            data = {**data, "models": {str(model): {} for model in data["models"]}}
        for key in ("properties", "fields"):
            field = cls.model_fields.get(key)
            if field is not None and isinstance(data.get(key), dict):
                default = field.default.model_dump() if field.default is not None else {}
                data = {**data, key: {**default, **data[key]}}
        return data

    @model_validator(mode="after")
    def _overrides_validate(self) -> Self:
        for model_id, overrides in (self.models or {}).items():
            if not isinstance(overrides, dict):
                raise ValueError(f"models.{model_id} must be a mapping of overrides")
            try:
                self._merged(overrides)
            except ValidationError as exc:
                problems = []
                for error in exc.errors():
                    path = ".".join(str(part) for part in error["loc"])
                    message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
                    section = next(k for k, v in _SECTIONS.items() if v is type(self))
                    hint = _suggestion((section, *map(str, error["loc"])), str(error["type"]))
                    problems.append(f"models.{model_id}.{path}: {message}{hint}")
                raise ValueError("; ".join(problems)) from exc
        return self

    def _merged(self, overrides: Mapping[str, Any]) -> Self:
        base = self.model_dump(exclude={"models"})
        for key, value in overrides.items():
            if key == "models":
                raise ValueError("models cannot be nested")
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        return type(self).model_validate(base)

    def for_model(self, model_id: str) -> Self | None:
        """This section as it applies to `model_id`'s changes, or `None` to skip them."""
        if self.models is None:
            return self
        overrides = self.models.get(model_id)
        if overrides is None:
            return None
        return self._merged(overrides) if overrides else self


class HubspotCompanies(_Strict):
    """Account stage changes as HubSpot companies."""

    id_property: PropertyName = Field("leadstream_account_id", pattern=_PROPERTY)
    """A company property with unique values holding the account id: the key of the upsert
    (HubSpot's `domain` is not unique, so it cannot be one)."""
    set_domain: bool = True
    """Also set the company's `domain` when the account id is a domain (a new company then
    carries it, as HubSpot recommends)."""
    lifecyclestage: dict[AccountStage, str | None] | None = None
    """Account stage → company `lifecyclestage` internal value; `null` leaves it alone."""
    properties: AccountFields = AccountFields(
        score="leadstream_account_score", stage="leadstream_account_stage"
    )

    @model_validator(mode="before")
    @classmethod
    def _merge_default_properties(cls, data: Any) -> Any:
        return _merge_field_defaults(cls, data, "properties")

    def lifecycle(self, stage: AccountStage) -> str | None:
        return _stage_map(HUBSPOT_COMPANY_LIFECYCLESTAGE, self.lifecyclestage).get(stage)


class HubspotMapping(MappingSection):
    id_property: PropertyName = Field("email", pattern=_PROPERTY)
    """`email` finds contacts by address (the lead id must be one); any other name is a unique
    contact property that holds the lead id."""
    lifecyclestage: dict[Stage, str | None] | None = None
    """Stage → `lifecyclestage` internal value (custom stages have numeric ids)."""
    lifecycle_order: tuple[str, ...] = HUBSPOT_LIFECYCLE_ORDER
    """Your lifecycle stages' internal values, first to last (as in HubSpot's settings)."""
    hs_lead_status: dict[Stage, str | None] | None = None
    properties: ScoreFields = ScoreFields(
        score="leadstream_score", grade="leadstream_grade", stage="leadstream_stage"
    )
    companies: HubspotCompanies = HubspotCompanies()
    """How account stage changes update companies."""

    def lifecycle(self, stage: Stage) -> str | None:
        return _stage_map(HUBSPOT_LIFECYCLESTAGE, self.lifecyclestage).get(stage)

    def lead_status(self, stage: Stage) -> str | None:
        return _stage_map(HUBSPOT_LEAD_STATUS, self.hs_lead_status).get(stage)

    def is_backwards(self, before: str | None, after: str | None) -> bool:
        """Whether setting `after` over `before` moves the lifecycle back (HubSpot ignores it)."""
        order = self.lifecycle_order
        if before is None or after is None or before not in order or after not in order:
            return False
        return order.index(after) < order.index(before)


class SalesforceAccounts(_Strict):
    """Account stage changes as Salesforce Accounts."""

    external_id_field: PropertyName = Field("Leadstream_Account_Id__c", pattern=_PROPERTY)
    """An External ID field of Account holding the account id: the key of the upsert."""
    fields: AccountFields = AccountFields(
        score="Leadstream_Account_Score__c", stage="Leadstream_Account_Stage__c"
    )

    @model_validator(mode="before")
    @classmethod
    def _merge_default_fields(cls, data: Any) -> Any:
        return _merge_field_defaults(cls, data, "fields")


class SalesforceMapping(MappingSection):
    external_id_field: PropertyName = Field("Leadstream_Lead_Id__c", pattern=_PROPERTY)
    """An External ID field of Lead holding the lead id: the key of the upsert."""
    status: dict[Stage, str | None] | None = None
    """Stage → `Lead.Status` picklist value; `null` leaves the status alone."""
    fields: ScoreFields = ScoreFields(
        score="Leadstream_Score__c", grade="Leadstream_Grade__c", stage="Leadstream_Stage__c"
    )
    accounts: SalesforceAccounts = SalesforceAccounts()
    """How account stage changes update Accounts."""

    def lead_status(self, stage: Stage) -> str | None:
        return _stage_map(SALESFORCE_LEAD_STATUS, self.status).get(stage)


class MauticMapping(MappingSection):
    match_field: PropertyName = Field("email", pattern=_PROPERTY)
    """`email`, or the alias of a unique-identifier contact field holding the lead id."""
    segments: dict[Stage, int] = Field(default_factory=dict)
    """Stage → segment id; a stage without one joins no segment."""
    remove_from_previous: bool = True
    """Take the contact out of its previous stage's segment when it joins the new one."""
    fields: ScoreFields = ScoreFields()
    """Contact fields (aliases) for score values; none by default."""

    @model_validator(mode="after")
    def _positive_segments(self) -> Self:
        for stage, segment in self.segments.items():
            if segment < 1:
                raise ValueError(f"segments.{stage.value}: a segment id is a positive number")
        return self


class ConnectMapping(_Strict):
    """The whole mapping file."""

    hubspot: HubspotMapping = HubspotMapping()
    salesforce: SalesforceMapping = SalesforceMapping()
    mautic: MauticMapping = MauticMapping()


# ------------------------------------------------------------------------------ loading


class _LineLoader(yaml.SafeLoader):
    """A safe loader that remembers the line of every mapping key."""

    lines: dict[tuple[str, ...], int]


def _key_lines(node: yaml.Node, path: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            here = (*path, str(key.value))
            out[here] = key.start_mark.line + 1
            _key_lines(value, here, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            here = (*path, str(index))
            out.setdefault(here, item.start_mark.line + 1)
            _key_lines(item, here, out)


def _choices(model: type[BaseModel] | None) -> list[str]:
    return list(model.model_fields) if model is not None else []


_SECTIONS: dict[str, type[BaseModel]] = {
    "hubspot": HubspotMapping,
    "salesforce": SalesforceMapping,
    "mautic": MauticMapping,
}
_STAGE_MAPS = {"lifecyclestage", "hs_lead_status", "status", "segments"}
_FIELD_MAPS = {"properties", "fields"}


def _suggestion(path: tuple[str, ...], error_type: str) -> str:
    """`; did you mean 'x'?` for a misspelt key or stage, else nothing."""
    if not path:
        return ""
    wrong = path[-1]
    parent = [part for part in path[:-1] if not part.isdigit()]
    choices: list[str] = []
    companies = "companies" in parent or "accounts" in parent
    if error_type == "extra_forbidden":
        if not parent:
            choices = list(_SECTIONS)
        elif parent[-1] == "companies":
            choices = _choices(HubspotCompanies)
        elif parent[-1] == "accounts":
            choices = _choices(SalesforceAccounts)
        elif len(parent) == 1 or (len(parent) == 3 and parent[1] == "models"):
            choices = _choices(_SECTIONS.get(parent[0]))
        elif parent[-1] in _FIELD_MAPS:
            choices = list((AccountFields if companies else ScoreFields).model_fields)
    elif error_type == "enum" or (parent and parent[-1] in _STAGE_MAPS):
        choices = [stage.value for stage in (AccountStage if companies else Stage)]
    if wrong in choices:
        return ""  # the key is right, its value is not
    close = difflib.get_close_matches(wrong, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _describe(error: Mapping[str, Any], lines: Mapping[tuple[str, ...], int], where: str) -> str:
    loc = tuple(str(part) for part in error["loc"])
    # Pydantic reports a bad dict key as loc (..., key, "[key]"); keep the key itself.
    path = tuple(part for part in loc if not part.startswith("[")) if loc else ()
    path = tuple(re.sub(r"^(.*)\.\[key\]$", r"\1", part) for part in path)
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "value_error":
        message = message.removeprefix("Value error, ")
        # A section's own check names the key it refers to first (`segments.mql: ...`).
        inner = re.match(r"^([\w.]+): ", message)
        if inner:
            path = (*path, *inner.group(1).split("."))
            message = message[inner.end() :]
    line = None
    for depth in range(len(path), 0, -1):
        line = lines.get(path[:depth])
        if line is not None:
            break
    at = f"{where}:{line}" if line is not None else where
    key = ".".join(path) or "(top level)"
    return f"{at}: {key}: {message}{_suggestion(path, str(error['type']))}"


def parse_mapping(text: str, *, where: str = "<mapping>") -> ConnectMapping:
    """The mapping in `text` (YAML); `where` names it in errors."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{where}:{mark.line + 1}" if mark is not None else where
        problem = getattr(exc, "problem", None) or str(exc)
        raise MappingError(f"{at}: not valid YAML: {problem}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MappingError(f"{where}: a mapping file is a YAML mapping of destination sections")
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _key_lines(node, (), lines)
    try:
        return ConnectMapping.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(error, lines, where) for error in exc.errors()]
        raise MappingError("invalid mapping file:\n  " + "\n  ".join(problems)) from exc


def load_mapping(path: Path | None) -> ConnectMapping:
    """The mapping file at `path`, or the defaults when `path` is `None`."""
    if path is None:
        return ConnectMapping()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(f"cannot read the mapping file {path}: {exc.strerror}") from exc
    return parse_mapping(text, where=str(path))


_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def email_of(lead_id: str) -> str | None:
    """The email address a lead id names (`ada@example.com` or `email:ada@example.com`)."""
    candidate = lead_id.removeprefix("email:")
    return candidate.lower() if _ADDRESS.fullmatch(candidate) and len(candidate) <= 254 else None


def mapping_from(args: Any, settings: Any) -> ConnectMapping:
    """The mapping file `--mapping` (`args.mapping`) or the settings name, else the defaults."""
    return load_mapping(getattr(args, "mapping", None) or settings.connect_mapping_file)
