"""The rule set: how a shop turns visitor behaviour and profile facts into a lead temperature.

A rule set is data, not code. It is validated once here (`parse_rule_set`), then compiled by
`app.scoring.compiler` into plain Python structures for the engine's hot path. Durations are
stored as seconds (floats); they may be written as "7d", "12h", "30m", "45s", "1h30m" or a
number of seconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

_UNIT_SECONDS = {"w": 604_800.0, "d": 86_400.0, "h": 3_600.0, "m": 60.0, "s": 1.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_DURATION_TEXT = re.compile(r"(?:\d+(?:\.\d+)?[wdhms])+")
_NUMBER_TEXT = re.compile(r"\d+(?:\.\d+)?")
MAX_DURATION_SECONDS = 100 * 365.25 * 86_400.0


def parse_duration(value: Any) -> float:
    """Seconds from "7d", "12h", "30m", "45s", "1h30m", "2w" or a number of seconds (>= 0)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("a duration is a string like '7d', '12h', '30m' or a number of seconds")
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if _NUMBER_TEXT.fullmatch(text):
            seconds = float(text)
        elif _DURATION_TEXT.fullmatch(text):
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise ValueError(f"not a duration: {value!r}; use e.g. '7d', '12h', '30m' or seconds")
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be a finite number of seconds >= 0")
    if seconds > MAX_DURATION_SECONDS:
        # Longer ones overflowed the dates computed from them (a 500 in preview and scoring).
        raise ValueError(f"a duration must be at most 100 years ({MAX_DURATION_SECONDS:.0f} s)")
    return seconds


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("a duration here must be longer than zero")
    return seconds


def _half_life(value: Any) -> float | str | None:
    # None inherits the rule set's decay.half_life; "never" switches decay off for one rule.
    if value is None:
        return None
    if value == "never":
        return "never"
    return _positive_duration(value)


# The JSON Schema of what the validators above take (for editors; `parse_duration` has the
# last word: e.g. it also caps a duration's text at 100 years).
_DURATION_TEXT_PATTERN = r"^ *([0-9]+(\.[0-9]+)?|([0-9]+(\.[0-9]+)? *[wdhmsWDHMS] *)+) *$"


def _duration_schema(*, positive: bool) -> dict[str, Any]:
    bound = {"exclusiveMinimum": 0} if positive else {"minimum": 0}
    return {
        "anyOf": [
            {"type": "number", **bound, "maximum": MAX_DURATION_SECONDS},
            {"type": "string", "pattern": _DURATION_TEXT_PATTERN},
        ],
        "description": "seconds, or a text of weeks, days, hours, minutes and seconds"
        + (" (longer than zero)" if positive else ""),
        "examples": ["7d", "12h", "1h30m", 3600],
    }


Duration = Annotated[
    float, BeforeValidator(parse_duration), WithJsonSchema(_duration_schema(positive=False))
]
PositiveDuration = Annotated[
    float, BeforeValidator(_positive_duration), WithJsonSchema(_duration_schema(positive=True))
]
HalfLife = Annotated[
    float | Literal["never"] | None,
    PlainValidator(_half_life),
    WithJsonSchema(
        {
            # One flat anyOf: client generators handle nested unions and constants badly.
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION_SECONDS},
                {"type": "string", "pattern": f"^ *never *$|{_DURATION_TEXT_PATTERN}"},
                {"type": "null"},
            ],
            "description": "seconds, a text like '3d' or '1h30m', 'never' (no decay for this"
            " rule) or null (the rule set's `decay.half_life`)",
            "examples": ["3d", "never"],
        }
    ),
]
Slug = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="unique in the rule set: lowercase letters, digits, - and _",
        examples=["checkout-started"],
    ),
]
# Bounded: scores sum points over events, and an infinite sum (points of 1e308) was stored as
# null in the lead's score state, making every later event of the lead a 500.
MAX_NUMBER = 1e9
Number = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_NUMBER, le=MAX_NUMBER)]
Coefficient = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Scalar = str | int | float | bool

ConditionOp = Literal[
    "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "matches", "exists"
]
Frequency = Literal["once_per_lead", "once_per_visit", "every_time"]
MATCH_FIELDS = ("city", "country", "interests")
RANGE_FIELDS = ("visits", "page_views", "time_on_site_seconds", "orders", "recency_hours")


class _Model(BaseModel):
    # A typo in a rule set ("frequncy") must fail loudly, not silently use a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


_SCALAR_SCHEMA: dict[str, Any] = {"type": ["string", "number", "boolean"]}
# What `value` each `op` takes (Condition._value_fits_op), for the JSON Schema: one branch per
# kind of operator, told apart by `op`.
_CONDITION_VALUES: list[dict[str, Any]] = [
    {"ops": ["eq", "ne", "contains"], "value": _SCALAR_SCHEMA},
    {"ops": ["in", "not_in"], "value": {"type": "array", "items": _SCALAR_SCHEMA, "minItems": 1}},
    {"ops": ["gt", "gte", "lt", "lte"], "value": {"type": "number"}},
    {"ops": ["matches"], "value": {"type": "string", "format": "regex"}},
    {"ops": ["exists"], "value": {"type": "boolean", "default": True}, "optional": True},
]


def _condition_schema(schema: dict[str, Any]) -> None:
    schema["properties"]["field"]["pattern"] = r"^(url|visit|properties(\.[^.]+)+)$"
    schema["oneOf"] = [
        {
            "properties": {"op": {"enum": kind["ops"]}, "value": kind["value"]},
            **({} if kind.get("optional") else {"required": ["value"]}),
        }
        for kind in _CONDITION_VALUES
    ]


class Condition(_Model):
    """A test on the event: `url`, `visit` (the visit number) or `properties.<name>[.<sub>]`.
    `eq`, `ne` and `contains` take a string, number or boolean; `in` and `not_in` a non-empty
    list of them; `gt`, `gte`, `lt` and `lte` a number; `matches` a regular expression;
    `exists` true (the default) or false."""

    model_config = ConfigDict(json_schema_extra=_condition_schema)

    field: str = Field(examples=["url", "properties.category", "visit"])
    op: ConditionOp
    value: Any = Field(default=None, validate_default=True, examples=["fridges", 2])

    @field_validator("field")
    @classmethod
    def _known_field(cls, field: str) -> str:
        if field in ("url", "visit"):
            return field
        parts = field.split(".")
        if parts[0] == "properties" and len(parts) > 1 and all(parts[1:]):
            return field
        raise ValueError("field must be 'url', 'visit' or 'properties.<name>'")

    @field_validator("value")
    @classmethod
    def _value_fits_op(cls, value: Any, info: ValidationInfo) -> Any:
        op = info.data.get("op")
        if op is None:  # the op itself is invalid and already reported
            return value
        if op == "exists":
            if value is None:
                return True
            if not isinstance(value, bool):
                raise ValueError("'exists' takes true or false")
        elif op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                raise ValueError(f"'{op}' takes a non-empty list of values")
            if not all(isinstance(v, Scalar) for v in value):
                raise ValueError(f"'{op}' values must be strings, numbers or booleans")
        elif op in ("gt", "gte", "lt", "lte"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"'{op}' takes a number")
            if not math.isfinite(value):
                raise ValueError(f"'{op}' takes a finite number")
        elif op == "matches":
            if not isinstance(value, str):
                raise ValueError("'matches' takes a regular expression string")
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        elif not isinstance(value, Scalar):
            raise ValueError(f"'{op}' takes a string, number or boolean")
        return value


class _Rule(_Model):
    id: Slug
    label: str | None = Field(None, description="for people: the lead's card and webhooks")


class BehaviourRule(_Rule):
    """Points for an event; `event` is the exact kind ("page", "Product Viewed", ...) or "*"."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": "product-viewed", "event": "Product Viewed", "points": 3, "cap": 15},
                {
                    "id": "fridge-pages",
                    "event": "page",
                    "conditions": [{"field": "url", "op": "contains", "value": "/fridges"}],
                    "points": 2,
                    "frequency": "once_per_visit",
                },
            ]
        }
    )

    event: str = Field(
        min_length=1,
        description='a track event\'s name, "page", "screen", "identify", or "*" for any',
    )
    conditions: list[Condition] = Field([], description="all must hold")
    points: Number = Field(description="added (or, negative, taken) each time it counts")
    frequency: Frequency = Field("every_time", description="how often an event counts")
    cap: Number | None = Field(
        default=None, ge=0, description="at most this many points in all (absolute)"
    )
    half_life: HalfLife = None


class MatchOption(_Model):
    values: list[str] = Field(min_length=1, description="matched case-insensitively")
    coefficient: Coefficient = Field(description="the share of the rule's weight, 0 to 1")


class RangeBand(_Model):
    """`min` inclusive, `max` exclusive (greater than `min`); either may be left out."""

    min: Number | None = None  # inclusive
    max: Number | None = None  # exclusive
    coefficient: Coefficient = Field(description="the share of the rule's weight, 0 to 1")

    @field_validator("max")
    @classmethod
    def _ordered(cls, high: float | None, info: ValidationInfo) -> float | None:
        low = info.data.get("min")
        if high is not None and low is not None and high <= low:
            raise ValueError("max must be greater than min")
        return high


class MatchFit(_Rule):
    """Profile field against options; case-insensitive, first matching option wins."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "moscow",
                    "type": "match",
                    "field": "city",
                    "weight": 10,
                    "options": [{"values": ["Moscow"], "coefficient": 1}],
                }
            ]
        }
    )

    type: Literal["match"]
    field: str = Field(
        description="city, country, interests or traits.<name>",
        json_schema_extra={"pattern": r"^(city|country|interests|traits\..+)$"},
    )
    weight: Number = Field(description="points when the best option's coefficient is 1")
    options: list[MatchOption] = Field(min_length=1)

    @field_validator("field")
    @classmethod
    def _known_field(cls, field: str) -> str:
        if field in MATCH_FIELDS or (field.startswith("traits.") and len(field) > 7):
            return field
        raise ValueError("field must be 'city', 'country', 'interests' or 'traits.<name>'")


class RangeFit(_Rule):
    """Numeric profile field against bands; the first band containing the value wins."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "returning",
                    "type": "range",
                    "field": "visits",
                    "weight": 10,
                    "bands": [
                        {"min": 2, "max": 4, "coefficient": 0.5},
                        {"min": 4, "coefficient": 1},
                    ],
                }
            ]
        }
    )

    type: Literal["range"]
    field: Literal["visits", "page_views", "time_on_site_seconds", "orders", "recency_hours"]
    weight: Number = Field(description="points when the band's coefficient is 1")
    bands: list[RangeBand] = Field(min_length=1)


class ContactsFit(_Rule):
    """Sum of the coefficients of the contact channels the lead left, capped at 1."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "left-a-phone",
                    "type": "contacts",
                    "weight": 20,
                    "options": [{"values": ["phone"], "coefficient": 1}],
                }
            ]
        }
    )

    type: Literal["contacts"]
    weight: Number = Field(description="points when the coefficients add up to 1")
    options: list[MatchOption] = Field(
        min_length=1, description="`values` are contact channels: phone, email, ..."
    )


FitRule = Annotated[
    MatchFit | RangeFit | ContactsFit,
    Field(discriminator="type", description="a profile criterion; `type` says which kind"),
]


class HardStep(_Model):
    event: str = Field(min_length=1, description="as a behaviour rule's `event`")
    conditions: list[Condition] = Field([], description="all must hold")


class HardRule(_Rule):
    """Steps in event-time order, all within `within`; the lead stays hot for `hold` after."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "contact-request",
                    "steps": [{"event": "Contact Requested"}],
                    "hold": "2d",
                },
                {
                    "id": "cart-then-checkout",
                    "steps": [{"event": "Product Added"}, {"event": "Checkout Started"}],
                    "within": "1h",
                },
            ]
        }
    )

    steps: list[HardStep] = Field(min_length=1, max_length=8)
    within: PositiveDuration | None = Field(
        default=None, validate_default=True, description="required with several steps"
    )
    hold: PositiveDuration | None = Field(
        default=None, validate_default=True, description="default: `within`; required without it"
    )

    @field_validator("within")
    @classmethod
    def _needed_for_sequences(cls, within: float | None, info: ValidationInfo) -> float | None:
        steps = info.data.get("steps")
        if within is None and steps is not None and len(steps) > 1:
            raise ValueError("a rule with several steps needs 'within'")
        return within

    @field_validator("hold")
    @classmethod
    def _hold_or_within(cls, hold: float | None, info: ValidationInfo) -> float | None:
        if hold is None:
            hold = info.data.get("within")
            if hold is None and "within" not in info.data:
                return None  # 'within' is invalid and already reported
            if hold is None:
                raise ValueError("'hold' is required when 'within' is not given")
        return hold


class Thresholds(_Model):
    """Scores from `warm` are warm, from `hot` hot: `hot` above `warm`, at most `max_score`."""

    warm: Number = Field(ge=0)
    hot: Number

    @field_validator("hot")
    @classmethod
    def _above_warm(cls, hot: float, info: ValidationInfo) -> float:
        warm = info.data.get("warm")
        if warm is not None and hot <= warm:
            raise ValueError("hot must be greater than warm")
        return hot


class Decay(_Model):
    half_life: PositiveDuration | None = None  # None: behaviour points never fade


class RuleSet(_Model):
    """A lead's score is its behaviour points (fading with `decay`) plus its fit points, capped
    at `max_score`; a hard rule makes it hot whatever the score. Rule ids are unique."""

    version: int = Field(ge=1)
    name: str = Field(min_length=1)
    max_score: Number = Field(default=100.0, gt=0)
    decay: Decay = Decay()
    behaviour: list[BehaviourRule] = Field([], description="points for what the visitor does")
    fit: list[FitRule] = Field([], description="points for who the visitor is")
    hard: list[HardRule] = Field([], description="event sequences that make a lead hot at once")
    thresholds: Thresholds
    hysteresis_points: Number = Field(
        default=0.0,
        ge=0,
        description="a lead cools only this far below a threshold; at most hot - warm",
    )
    min_hold: Duration = Field(0.0, description="a temperature is kept at least this long")


class RuleSetInvalid(Exception):
    """The rule set was rejected; `.errors` holds {rule, field, message} dicts for a 422."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


_RULE_LISTS = ("behaviour", "fit", "hard")


def _nul_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Where a document holds a NUL character (PostgreSQL's JSONB cannot store one)."""
    if isinstance(value, str):
        if "\x00" in value:
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                yield (*path, key.replace("\x00", "\\u0000"))
            else:
                yield from _nul_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_paths(item, (*path, index))


def parse_rule_set(data: dict[str, Any]) -> RuleSet:
    """Validate a rule set document; raise `RuleSetInvalid` naming every bad rule and field."""
    nul = [
        {
            "rule": None,
            "field": ".".join(str(part) for part in path) or None,
            "message": "must not contain NUL (\\u0000) characters",
        }
        for path in _nul_paths(data)
    ]
    if nul:
        raise RuleSetInvalid(nul)
    try:
        rule_set = RuleSet.model_validate(data)
    except ValidationError as exc:
        raise RuleSetInvalid([_describe(data, err) for err in exc.errors()]) from None
    errors = _cross_check(rule_set)
    if errors:
        raise RuleSetInvalid(errors)
    return rule_set


def _describe(data: Any, err: Any) -> dict[str, Any]:
    loc = list(err["loc"])
    rule_id = None
    if len(loc) >= 2 and loc[0] in _RULE_LISTS and isinstance(loc[1], int):
        if loc[0] == "fit" and len(loc) >= 3 and loc[2] in ("match", "range", "contacts"):
            del loc[2]  # the discriminator tag pydantic inserts is not part of the document
        try:
            raw = data[loc[0]][loc[1]]
            rule_id = raw.get("id") if isinstance(raw, dict) else None
        except (KeyError, IndexError, TypeError):
            rule_id = None
    message = err["msg"].removeprefix("Value error, ")
    return {"rule": rule_id, "field": ".".join(str(p) for p in loc) or None, "message": message}


def _cross_check(rule_set: RuleSet) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for list_name in _RULE_LISTS:
        for index, rule in enumerate(getattr(rule_set, list_name)):
            if rule.id in seen:
                errors.append(
                    {
                        "rule": rule.id,
                        "field": f"{list_name}.{index}.id",
                        "message": f"duplicate rule id {rule.id!r}; ids are unique in a rule set",
                    }
                )
            seen.add(rule.id)
    thresholds = rule_set.thresholds
    if thresholds.hot > rule_set.max_score:
        errors.append(
            {"rule": None, "field": "thresholds.hot", "message": "hot must be <= max_score"}
        )
    if rule_set.hysteresis_points > thresholds.hot - thresholds.warm:
        errors.append(
            {
                "rule": None,
                "field": "hysteresis_points",
                "message": "hysteresis_points must be <= hot - warm",
            }
        )
    return errors


def rule_set_document_schema(ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """The JSON Schema of a rule-set document as an editor writes it and `PUT /v1/rules`
    takes it: `RuleSet`'s own (the model that validates it), without `version` to give, and
    with the fields answers add. Its `$defs` are named by `ref_template`."""
    from app.scoring.defaults import DEFAULT_RULE_SET  # defaults imports this module

    schema = RuleSet.model_json_schema(ref_template=ref_template)
    schema["title"] = "RuleSetDocument"
    schema["required"] = [name for name in schema["required"] if name != "version"]
    properties = schema["properties"]
    properties["version"]["description"] = "in answers; ignored when sent (versions are numbered)"
    properties["created_at"] = {
        "type": "string",
        "format": "date-time",
        "description": "when the version was published: in answers; ignored when sent",
    }
    properties["active"] = {
        "type": "boolean",
        "description": "whether leads are scored with it now: in answers; ignored when sent",
    }
    schema["examples"] = [DEFAULT_RULE_SET]
    return schema


def rule_set_json_schema() -> dict[str, Any]:
    """The rule-set document's JSON Schema, standalone (`GET /v1/rules/schema`)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **rule_set_document_schema(),
    }


def rule_set_openapi_schemas() -> dict[str, dict[str, Any]]:
    """`RuleSetDocument` and the models it refers to, as OpenAPI components."""
    schema = rule_set_document_schema("#/components/schemas/{model}")
    return {**schema.pop("$defs"), "RuleSetDocument": schema}
