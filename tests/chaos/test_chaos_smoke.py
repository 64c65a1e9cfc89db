"""The chaos suite's short form (``velourcity chaos --ci``): scenarios 1, 3 and 4 with fewer
events and shorter faults, against the session broker, and scenario 7 (failover) on the local
three-broker cluster over SASL_SSL. Every (event, endpoint) pair the broker acknowledged must
arrive; poison must end in quarantine with its reason; no partition may stay uncommitted."""

from __future__ import annotations

import pytest
from velourcity_chaos.failover import failover_controller, failover_leader
from velourcity_chaos.scenarios import Options, poison_input, receiver_outage, worker_crashes

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


@pytest.fixture
def options(kafka_bootstrap, tmp_path) -> Options:
    return Options(bootstrap=kafka_bootstrap, directory=tmp_path, ci=True)


def test_worker_crashes_lose_nothing(options) -> None:
    tally = worker_crashes(options)
    print(f"\n{tally.as_dict()}")
    assert tally.lost == 0
    assert tally.delivered == tally.expected == tally.published == 2_000
    assert tally.notes["SIGKILLs"] >= 2
    # Duplicates are printed, not asserted here: how many a SIGKILL repeats depends on how
    # loaded the machine is (the commit cadence and metadata have unit tests of their own).
    problems = [p for p in tally.problems if not p.startswith("duplicates ")]
    assert not problems, problems


def test_receiver_outage_loses_nothing_and_dead_letters_nothing(options) -> None:
    tally = receiver_outage(options)
    print(f"\n{tally.as_dict()}")
    assert tally.lost == 0
    assert tally.delivered == tally.expected == tally.published
    assert tally.dead_lettered == 0
    assert tally.notes["answered non-2xx"] > 0  # the outage did happen
    assert not tally.problems, tally.problems


def test_poison_input_is_quarantined_and_valid_events_delivered(options) -> None:
    tally = poison_input(options)
    print(f"\n{tally.as_dict()}")
    assert tally.lost == 0
    assert tally.delivered == tally.expected == tally.published == 500
    produced = tally.notes["poison produced"]
    assert sum(produced.values()) == 100 and produced["huge"] == 1
    assert tally.quarantined == 100
    assert not tally.problems, tally.problems  # reasons as expected, no worker restarted


@pytest.mark.cluster
@pytest.mark.parametrize(
    "scenario",
    # The controller case was xfail until the fan-out's own consumer (issue 17): in 1 of 2
    # CI-form runs on 2026-12-02 one orders partition's fan-out stayed at offset 17 of 160 after
    # the controller's SIGKILL, Faust's drain loop dropping records read again across a
    # rebalance (replayed in tests/unit/test_fanout_consumer.py). Since: passed in 2 of 2
    # fresh-clone CI runs and 7 of 7 local runs (2026-12-07).
    [failover_leader, failover_controller],
    ids=["leader", "controller"],
)
def test_failover_loses_nothing_and_leaves_no_partition_stuck(
    kafka_cluster, tmp_path, scenario
) -> None:
    options = Options(
        bootstrap=kafka_cluster.env["VELOURCITY_KAFKA_BOOTSTRAP"], directory=tmp_path, ci=True
    )
    tally = scenario(options)
    print(f"\n{tally.as_dict()}")
    assert "SIGKILL" in tally.notes, tally.problems  # a node did die mid-run
    assert tally.lost == 0
    assert tally.delivered == tally.expected == tally.published == 1_000
    assert tally.notes["stuck partitions"] == "none"
    assert not tally.problems, tally.problems
