"""Where each engine partition's keys live: the contract's names with one partition on a plain
Redis, and one Redis Cluster hash tag per partition otherwise."""

from __future__ import annotations

import pytest
from redis.cluster import key_slot

from libs.common.config import Settings, load_settings


def test_one_partition_on_a_plain_redis_keeps_the_contracts_names():
    s = Settings()
    assert (s.partition_key("signals", 0), s.partition_key("ticks", 0)) == (
        "jt:signals",
        "jt:ticks",
    )
    assert s.all_partition_keys("ticks") == ["jt:ticks"]


def test_each_partitions_streams_share_one_cluster_slot_and_partitions_differ():
    s = Settings(engine_partitions=3)
    assert s.partition_key("signals", 2) == "jt:{p2}:signals"
    for k in range(3):
        slots = {key_slot(s.partition_key(n, k).encode()) for n in ("signals", "ticks", "x:1")}
        assert len(slots) == 1
    assert len({key_slot(s.partition_key("signals", k).encode()) for k in range(3)}) == 3


def test_a_cluster_tags_the_keys_even_with_one_partition():
    s = Settings(redis_url="redis+cluster://127.0.0.1:7000")
    assert s.redis_cluster and s.partition_key("signals", 0) == "jt:{p0}:signals"


def test_recorders_are_spread_by_their_id():
    s = Settings(engine_partitions=2)
    assert [s.partition_of(i) for i in (1, 2, 3, 10_001)] == [1, 0, 1, 1]


@pytest.mark.parametrize("value", ["0", "65", "two", "-1"])
def test_a_partition_count_out_of_range_is_refused_by_name(value, tmp_path):
    with pytest.raises(ValueError, match="ENGINE_PARTITIONS must be a whole number from 1 to 64"):
        load_settings({"ENGINE_PARTITIONS": value, "JT_VAR_DIR": str(tmp_path)}, tmp_path / ".env")


def test_the_control_center_reads_every_partitions_engine_metrics():
    from services.ui.api.service_metrics import targets

    found = targets(Settings(engine_partitions=2, engine_port=9000, metrics_host="127.0.0.1"))
    assert (found["engine-0"], found["engine-1"]) == (
        "http://127.0.0.1:9000/metrics",
        "http://127.0.0.1:9001/metrics",
    )
    assert "engine" not in found
    assert targets(Settings(engine_port=9000))["engine"].endswith(":9000/metrics")


def test_the_executors_metrics_ports_move_past_the_engines_of_every_partition():
    from services.ui.api.service_metrics import targets

    two = Settings(engine_partitions=2, engine_port=8085, executor_metrics_port=8086)
    assert two.executor_metrics_first == 8087  # engine-1 has 8086
    found = targets(two)
    assert (found["engine-1"], found["executor-1"], found["executor-2"]) == (
        "http://127.0.0.1:8086/metrics",
        "http://127.0.0.1:8087/metrics",
        "http://127.0.0.1:8088/metrics",
    )
    assert Settings(executor_metrics_port=8086).executor_metrics_first == 8086
    assert Settings(engine_partitions=2, executor_metrics_port=9100).executor_metrics_first == 9100
