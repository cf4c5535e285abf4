"""The operator's metrics: names, values, and series dropped when their subject goes away."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from polyculture import metrics


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_community_rows_set_and_absent_communities_lose_every_series() -> None:
    metrics.record_communities("m-p1", {"a": (4.0, 3.0, 2.0), "b": (2.0, 2.0, 0.0)})
    metrics.record_queue("m-p1", "a", 2, 31.5)
    metrics.record_admission("m-p1", "b")
    metrics.record_gpu_seconds_used("m-p1", "b", 120.0)
    metrics.record_gpu_seconds_used("m-p1", "b", -5.0)
    assert value("polyculture_community_entitled_gpus", pool="m-p1", community="a") == 4.0
    assert value("polyculture_community_allocated_gpus", pool="m-p1", community="a") == 3.0
    assert value("polyculture_community_pending_gpus", pool="m-p1", community="a") == 2.0
    assert value("polyculture_queue_length", pool="m-p1", community="a") == 2
    assert value("polyculture_queue_oldest_wait_seconds", pool="m-p1", community="a") == 31.5
    assert value("polyculture_admissions_total", pool="m-p1", community="b") == 1
    used = "polyculture_community_gpu_seconds_used_total"
    assert value(used, pool="m-p1", community="b") == 120.0

    metrics.record_communities("m-p1", {"a": (6.0, 3.0, 2.0)})
    assert value("polyculture_community_entitled_gpus", pool="m-p1", community="a") == 6.0
    assert value("polyculture_community_entitled_gpus", pool="m-p1", community="b") is None
    assert value("polyculture_admissions_total", pool="m-p1", community="b") is None
    assert value(used, pool="m-p1", community="b") is None
    assert value("polyculture_queue_length", pool="m-p1", community="a") == 2


def test_scheduling_counters_and_cycle_histogram() -> None:
    metrics.record_preemption("m-p2", "FairShare")
    metrics.record_preemption("m-p2", "FairShare")
    metrics.record_preemption("m-p2", "OwnerReclaim")
    metrics.observe_cycle("m-p2", 0.003)
    metrics.observe_cycle("m-p2", 0.2)
    metrics.record_reconcile_error("m-p2", "backend")
    assert value("polyculture_preemptions_total", pool="m-p2", reason="FairShare") == 2
    assert value("polyculture_preemptions_total", pool="m-p2", reason="OwnerReclaim") == 1
    cycle = "polyculture_scheduler_cycle_duration_seconds"
    assert value(f"{cycle}_count", pool="m-p2") == 2
    assert value(f"{cycle}_bucket", pool="m-p2", le="0.005") == 1
    assert value("polyculture_reconcile_errors_total", pool="m-p2", kind="backend") == 1


def test_pool_status_gauges_drop_gone_owners_and_classes() -> None:
    status = {
        "capacity": [{"gpuClass": "h100", "gpus": 8}, {"gpuClass": "l4", "gpus": 4}],
        "totalUnits": 9.0,
        "unhealthyGPUs": 1,
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "Degraded", "status": "True"}],
        "members": [
            {
                "owner": "lab-a",
                "availableGPUs": 8,
                "gpuSecondsProvided": 60.0,
                "gpusByClass": {"h100": 8},
            },
            {
                "owner": "lab-b",
                "availableGPUs": 4,
                "gpuSecondsProvided": 0.0,
                "gpusByClass": {"l4": 4},
            },
        ],
    }
    metrics.record_pool("m-p3", status)
    assert value("polyculture_pool_gpus", pool="m-p3", gpu_class="l4") == 4
    assert value("polyculture_pool_condition", pool="m-p3", condition="Degraded") == 1
    assert value("polyculture_member_gpus", pool="m-p3", owner="lab-b", gpu_class="l4") == 4
    given = "polyculture_member_gpu_seconds_provided_total"
    assert value(given, pool="m-p3", owner="lab-a") == 60.0
    assert f"# TYPE {given} counter" in generate_latest().decode()
    status["capacity"] = [{"gpuClass": "h100", "gpus": 8}]
    status["members"] = status["members"][:1]  # type: ignore[index]
    status["conditions"] = [{"type": "Ready", "status": "True"}]
    metrics.record_pool("m-p3", status)
    assert value("polyculture_pool_gpus", pool="m-p3", gpu_class="l4") is None
    assert value("polyculture_member_available_gpus", pool="m-p3", owner="lab-b") is None
    assert value(given, pool="m-p3", owner="lab-b") is None
    assert value("polyculture_member_gpus", pool="m-p3", owner="lab-b", gpu_class="l4") is None
    assert value("polyculture_pool_condition", pool="m-p3", condition="Degraded") == 0
    assert value("polyculture_member_available_gpus", pool="m-p3", owner="lab-a") == 8


def test_forget_pool_removes_every_series_of_that_pool_only() -> None:
    for pool in ("m-gone", "m-kept"):
        metrics.record_pool(pool, {"capacity": [{"gpuClass": "h100", "gpus": 2}], "members": []})
        metrics.record_communities(pool, {"a": (1.0, 1.0, 0.0)})
        metrics.record_guarantees(pool, {"a": 1})
        metrics.record_queue(pool, "a", 0, 0.0)
        metrics.observe_cycle(pool, 0.01)
        metrics.record_preemption(pool, "FairShare")
        metrics.record_reconcile_error(pool, "spec")
    metrics.forget_pool("m-gone")
    text = generate_latest(REGISTRY).decode()
    assert 'pool="m-gone"' not in text
    assert text.count('pool="m-kept"') >= 10


def test_guarantees_follow_the_spec() -> None:
    metrics.record_pool("m-p4", {"members": []}, {"a": 4.0, "b": 0.0})
    assert value("polyculture_community_guaranteed_gpus", pool="m-p4", community="a") == 4.0
    metrics.record_pool("m-p4", {"members": []}, {"b": 2.0})
    assert value("polyculture_community_guaranteed_gpus", pool="m-p4", community="a") is None
    assert value("polyculture_community_guaranteed_gpus", pool="m-p4", community="b") == 2.0
