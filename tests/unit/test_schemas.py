"""schemas/*.schema.json: valid draft 2020-12, and in step with the codec's examples."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from stream.codec import DEAD_LETTER_REASONS, REASONS, dead_letter, encode
from tests.examples import INVALID, VALID, Example
from tests.schema_check import SCHEMAS, format_checker, load, validator

INPUT_SCHEMAS = {
    "cart": "cart-event.schema.json",
    "purchase": "purchase-event.schema.json",
    "subscription": "subscription-event.schema.json",
}
T = "2026-11-23T09:15:00Z"


def ids(example: Example) -> str:
    return example.id


# --- every schema ------------------------------------------------------------

SCHEMA_FILES = sorted(p.name for p in SCHEMAS.glob("*.schema.json"))


def test_every_event_has_a_schema() -> None:
    """There is one schema per input and output event of the contract."""
    outputs = ["suggestion", "trigger", "customer-ltv", "item-neighbors", "dead-letter"]
    expected = [*INPUT_SCHEMAS.values(), *(f"{name}.schema.json" for name in outputs)]
    assert sorted(expected) == SCHEMA_FILES


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    """Each schema is a valid draft 2020-12 schema with $id, title and description."""
    schema = load(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(":" + name.removesuffix(".schema.json"))
    assert schema["title"]
    assert schema["description"]


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_every_property_is_described(name: str) -> None:
    """Every top-level property of each schema has a description."""
    undocumented = [
        key for key, sub in load(name)["properties"].items() if "description" not in sub
    ]
    assert undocumented == []


def test_format_checker_checks_date_time() -> None:
    """The format checker in use rejects a date that does not exist."""
    assert not format_checker().conforms("2026-02-30T09:15:00Z", "date-time")
    assert format_checker().conforms(T, "date-time")


# --- inputs: the shared examples table ---------------------------------------


@pytest.mark.parametrize("example", VALID, ids=ids)
def test_input_schema_accepts_valid_example(example: Example) -> None:
    """The topic's input schema accepts every example the codec decodes."""
    errors = list(validator(INPUT_SCHEMAS[example.topic]).iter_errors(json.loads(example.payload)))
    assert errors == []


@pytest.mark.parametrize("example", [e for e in INVALID if e.schema], ids=ids)
def test_input_schema_rejects_invalid_example(example: Example) -> None:
    """The topic's input schema rejects every invalid example that JSON Schema can judge."""
    assert not validator(INPUT_SCHEMAS[example.topic]).is_valid(json.loads(example.payload))


# --- outputs: one hand-written sample each ------------------------------------

OUTPUT_SAMPLES: dict[str, dict[str, Any]] = {
    "suggestion.schema.json": {
        "suggestion_id": "5f0c6a57-5d6c-5a8e-9a39-2b1f0f3c1d4e",
        "customer_id": "cust-1",
        "cart_id": None,
        "trigger_sku": "cam-1",
        "items": [
            {
                "sku": "sd-64",
                "score": 2.4,
                "count": 3,
                "support": 0.3,
                "confidence": 0.75,
                "lift": 2.5,
            }
        ],
        "variant": "treatment",
        "source_event_id": "evt-1",
        "event_ts": T,
        "emitted_at": "2026-11-23T09:15:00.042Z",
    },
    "trigger.schema.json": {
        "trigger_id": "b1d7e1f0-3c55-5d0c-8f5e-0c5d1b9a7e11",
        "kind": "renewal_approaching",
        "customer_id": "cust-1",
        "variant": "control",
        "event_ts": T,
        "emitted_at": T,
        "customer": {"ltv": 412.5, "rank": "B", "orders": 4},
        "offers": [
            {"type": "upsell", "plan_id": "pro", "score": 0.8, "reason": "next tier"},
            {"type": "cross_sell", "sku": "sd-64", "score": 0.5, "reason": "bought with cam-1"},
        ],
        "subscription_id": "sub-1",
        "plan_id": "basic",
        "renews_at": "2026-12-07T09:15:00Z",
        "window_days": 14,
    },
    "customer-ltv.schema.json": {
        "customer_id": "cust-1",
        "variant": "treatment",
        "as_of": T,
        "orders": 3,
        "revenue": 134.94,
        "aov": 44.98,
        "first_purchase": "2026-01-10T12:00:00Z",
        "last_purchase": T,
        "frequency": 2,
        "recency": 317.0,
        "T": 317.0,
        "monetary_value": 44.98,
        "p_alive": None,
        "expected_purchases": None,
        "predicted_clv": None,
        "ltv": 134.94,
        "rank": None,
    },
    "item-neighbors.schema.json": {
        "sku": "cam-1",
        "baskets": 4,
        "total_baskets": 10,
        "neighbors": [
            {"sku": "sd-64", "count": 3, "support": 0.3, "confidence": 0.75, "lift": 2.5},
        ],
    },
    "dead-letter.schema.json": json.loads(
        encode(
            dead_letter(
                reason="bad_field",
                detail="quantity must be an integer >= 1, got 0",
                topic="cart-events",
                partition=2,
                offset=41,
                original=b'{"quantity": 0}',
                failed_at=T,
                key=b"cust-1",
            )
        )
    ),
}
REQUIRED = [(name, field) for name in OUTPUT_SAMPLES for field in load(name)["required"]]


@pytest.mark.parametrize("name", OUTPUT_SAMPLES)
def test_output_schema_accepts_sample(name: str) -> None:
    """Each output schema accepts a hand-written record of its topic."""
    assert list(validator(name).iter_errors(OUTPUT_SAMPLES[name])) == []


@pytest.mark.parametrize(("name", "field"), REQUIRED)
def test_output_schema_rejects_missing_required_field(name: str, field: str) -> None:
    """Each output schema rejects its sample with any one required field left out."""
    record = {key: value for key, value in OUTPUT_SAMPLES[name].items() if key != field}
    assert not validator(name).is_valid(record)


@pytest.mark.parametrize("name", OUTPUT_SAMPLES)
def test_output_schema_allows_new_fields(name: str) -> None:
    """Output schemas allow fields they do not name, so the contract can grow."""
    assert validator(name).is_valid({**OUTPUT_SAMPLES[name], "added_later": {"any": 1}})


def test_output_timestamps_are_utc() -> None:
    """Output timestamps must be UTC (Z), not another offset."""
    sample = {**OUTPUT_SAMPLES["suggestion.schema.json"], "event_ts": "2026-11-23T10:15:00+01:00"}
    assert not validator("suggestion.schema.json").is_valid(sample)


def test_trigger_offer_needs_sku_or_plan_id() -> None:
    """A trigger offer names a sku or a plan_id."""
    sample = OUTPUT_SAMPLES["trigger.schema.json"]
    bare = {**sample, "offers": [{"type": "upsell", "score": 1.0, "reason": "x"}]}
    assert not validator("trigger.schema.json").is_valid(bare)


def test_dead_letter_reasons_are_the_codec_reasons() -> None:
    """The dead-letter schema's reasons: the codec's, then processing_error."""
    enum = tuple(load("dead-letter.schema.json")["properties"]["reason"]["enum"])
    assert enum == DEAD_LETTER_REASONS == (*REASONS, "processing_error")


def test_dead_letter_original_must_be_base64() -> None:
    """The dead-letter schema rejects an `original` that is not base64."""
    sample = {**OUTPUT_SAMPLES["dead-letter.schema.json"], "original": "not base64!"}
    assert not validator("dead-letter.schema.json").is_valid(sample)
