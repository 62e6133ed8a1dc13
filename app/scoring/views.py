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


class Published(BaseModel):
    version: int
    created_at: datetime
    job: RescoreJobView


class VersionSummary(BaseModel):
    version: int
    name: str | None
    created_at: datetime
    active: bool


class VersionList(BaseModel):
    versions: list[VersionSummary]


class PreviewChange(BaseModel):
    lead_id: uuid.UUID
    from_: Temperature = Field(alias="from", serialization_alias="from")
    to: Temperature
    score_active: float
    score_draft: float


class TemperatureCounts(BaseModel):
    cold: int
    warm: int
    hot: int


class Preview(BaseModel):
    active_version: int
    evaluated_at: datetime
    leads: int
    events: int = Field(description="events replayed")
    active: TemperatureCounts
    draft: TemperatureCounts
    changed: int = Field(description="leads whose temperature the draft changes")
    changes: list[PreviewChange]
    changes_truncated: bool


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
