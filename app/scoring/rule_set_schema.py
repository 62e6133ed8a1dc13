"""The rule-set document's JSON Schema, from the models that validate it (`RuleSet`), with the
default rule set as its example: served at `GET /v1/rules/schema` and in the OpenAPI
document's components."""

from typing import Any

from app.scoring.defaults import DEFAULT_RULE_SET
from app.scoring.schemas import RuleSet


def rule_set_document_schema(ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """The JSON Schema of a rule-set document as an editor writes it and `PUT /v1/rules`
    takes it: `RuleSet`'s own (the model that validates it), without `version` to give, and
    with the fields answers add. Its `$defs` are named by `ref_template`."""
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
