"""The rule-set API's answers, as OpenAPI documents them (the rule set itself is validated by
`app.scoring.schemas.RuleSet`; a stored version is answered as it was sent)."""

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Temperature = Literal["cold", "warm", "hot"]


def _a_published_document(schema: dict[str, Any]) -> None:
    # The stored document was validated by `RuleSet` when it was published: its schema is the
    # rule-set document's (OpenAPI component `RuleSetDocument`), with these fields required.
    required = schema["required"]
    schema.clear()
    schema["allOf"] = [{"$ref": "#/components/schemas/RuleSetDocument"}]
    schema["required"] = required


class RuleSetView(BaseModel):
    """A published version: the rule set as it was sent (name, thresholds, behaviour, fit,
    hard, decay, ...), with its version number, when it was published and whether it is the
    one leads are scored with now."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_a_published_document)

    name: str
    version: int
    created_at: datetime
    active: bool


class RescoreJobView(BaseModel):
    id: uuid.UUID
    rule_set_version: int
    status: Literal["pending", "running", "done", "failed", "superseded"]
    processed: int
    total: int
    percent: float
    created_at: datetime
    started_at: datetime | None = Field(
        description="when the worker running it claimed it; a job taken over from a worker"
        " that stopped or went silent shows its new claim"
    )
    finished_at: datetime | None
    error: str | None
    url: str = Field(description="where to follow the job")


class RuleWarning(BaseModel):
    """Something the rule set probably does not mean; it was taken (or would be) all the same."""

    rule: str | None = Field(description="the rule's id; null: the rule set as a whole")
    code: Literal["unknown_event", "unknown_value", "negative_weight", "unreachable_threshold"]
    message: str
    suggestion: str | None = Field(
        None,
        description="`unknown_event`, `unknown_value`: the closest event name the site sent"
        " recently, or value its recent leads have",
    )
    threshold: Literal["warm", "hot"] | None = Field(
        None, description="`unreachable_threshold`: which one"
    )


WARNINGS_DESCRIPTION = "warnings about the rule set (not errors: nothing was refused)"


class Published(BaseModel):
    version: int
    created_at: datetime
    note: str | None
    author: str | None = Field(description="a person's email, or `secret key`")
    job: RescoreJobView
    warnings: list[RuleWarning] = Field(description=WARNINGS_DESCRIPTION)


class VersionSummary(BaseModel):
    version: int
    name: str | None
    created_at: datetime
    active: bool
    note: str | None = Field(description="given when it was published")
    author: str | None = Field(
        description="who published it: a person's email, or `secret key`; null for versions"
        " published before authors were kept, and for the site's first version"
    )


class FieldChange(BaseModel):
    path: str = Field(description="dotted, e.g. `points` or `conditions.0.value`")
    old: Any = Field(description="null: absent in the older version")
    new: Any = Field(description="null: absent in the newer version")


class RuleChange(BaseModel):
    id: str
    kind: Literal["behaviour", "fit", "hard"]
    changes: list[FieldChange]


class RuleEntry(BaseModel):
    id: str
    kind: Literal["behaviour", "fit", "hard"]
    rule: dict[str, Any] = Field(description="as it was published")


class RuleSetDiff(BaseModel):
    """From version `from` to version `to`: rules matched by id."""

    from_: int = Field(alias="from", serialization_alias="from")
    to: int
    added: list[RuleEntry]
    removed: list[RuleEntry]
    changed: list[RuleChange]
    settings: list[FieldChange] = Field(
        description="the rule set's own fields: name, thresholds, hysteresis_points, decay, ..."
    )


class VersionList(BaseModel):
    versions: list[VersionSummary]


class RuleDifference(BaseModel):
    """A rule's part in a lead's move: its points under the active set and the draft (0: not
    contributing), and for a hard rule whether it holds the lead hot under each."""

    rule_id: str
    label: str
    kind: Literal["behaviour", "fit", "hard", "limit"] = Field(
        description="limit: the score's bounds (0 and max_score), not a rule"
    )
    points_active: float
    points_draft: float
    delta: float = Field(description="points_draft - points_active")
    hot_active: bool
    hot_draft: bool


class PreviewChange(BaseModel):
    """A lead whose temperature the draft changes."""

    lead_id: uuid.UUID
    label: str = Field(
        description="who: the name or email the lead left, else its city, else its id's first"
        " 8 characters"
    )
    from_: Temperature = Field(alias="from", serialization_alias="from")
    to: Temperature
    score_active: float
    score_draft: float
    rules: list[RuleDifference] = Field(
        description="the rules that make the difference, at most 5: a hard rule that holds"
        " under one set only first, then the largest point differences"
    )


class PreviewMoves(BaseModel):
    """How many leads move from one temperature (active set) to another (draft)."""

    cold_to_warm: int
    cold_to_hot: int
    warm_to_cold: int
    warm_to_hot: int
    hot_to_cold: int
    hot_to_warm: int


class TemperatureCounts(BaseModel):
    cold: int
    warm: int
    hot: int


class Preview(BaseModel):
    active_version: int
    evaluated_at: datetime
    leads: int
    events: int = Field(description="events replayed")
    active: TemperatureCounts = Field(description="leads per temperature under the active set")
    draft: TemperatureCounts = Field(description="leads per temperature under the draft")
    moves: PreviewMoves
    changed: int = Field(description="leads whose temperature the draft changes")
    changes: list[PreviewChange] = Field(
        description="the changed leads whose scores move the most (ties: by lead id), at most"
        " `limit`: a capped list, not pages, so that a large site's answer stays small"
    )
    changes_truncated: bool = Field(description="more leads changed than are listed")
    warnings: list[RuleWarning] = Field(
        [], description=WARNINGS_DESCRIPTION + "; in the answer of `POST /v1/rules/preview`"
    )


class PreviewJobView(BaseModel):
    """A preview running in the background; `result` is the preview's answer once done."""

    id: uuid.UUID
    status: Literal["pending", "running", "done", "failed", "cancelled"]
    at: datetime = Field(description="the moment leads are evaluated at")
    limit: int = Field(description="changed leads listed in the result")
    processed: int = Field(description="leads previewed so far")
    total: int = Field(description="the site's leads when the job started (or was created)")
    percent: float
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    result: Preview | None = Field(description="when done")
    url: str = Field(description="where to follow the job")


class RuleSetJsonSchema(BaseModel):
    """A JSON Schema document (draft 2020-12)."""

    model_config = ConfigDict(extra="allow")

    schema_: str = Field(alias="$schema", serialization_alias="$schema")
    type: Literal["object"]
    properties: dict[str, Any]
    required: list[str]
    defs: dict[str, Any] = Field(alias="$defs", serialization_alias="$defs")
