"""The SDK's dependency-free test helpers stay in step with the pipeline's schemas and encoding.

tests/unit/test_testing_helpers.py checks the SDK's requests against the real handler; this
checks that every SDK sample is a valid event under the current Avro schemas and renders to
the same bytes after the round trip the fan-out does.
"""

from __future__ import annotations

import random

import pytest
from velourcity_webhooks import testing as sdk_testing

from pipeline.events.body import render_body
from pipeline.events.codec import decode, encode
from pipeline.events.registry import default_registry
from pipeline.events.types import EVENT_TYPES


def test_the_sdk_knows_the_same_event_types() -> None:
    assert sdk_testing.EVENT_TYPES == EVENT_TYPES


@pytest.mark.parametrize("event_type", EVENT_TYPES)
@pytest.mark.parametrize("seed", range(5))
def test_sdk_samples_fit_the_schemas_and_render_as_the_pipeline_does(
    event_type: str, seed: int
) -> None:
    registry = default_registry()
    event = sdk_testing.sample_event(event_type, "acct_1", rng=random.Random(seed))
    published = decode(encode(event, registry.current(event_type)), registry).event
    assert render_body(published) == sdk_testing.render_body(event)
