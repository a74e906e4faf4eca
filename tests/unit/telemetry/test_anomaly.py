"""Anomaly detection: EWMA against a series' own past, robust peer comparison, and the monitor turning both
into warning alerts that fire well before the hard temperature limit."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from aidc.telemetry import names
from aidc.telemetry.alert import Alert, AlertState
from aidc.telemetry.anomaly import (
    AnomalyMonitor,
    EwmaDetector,
    PeerDetector,
    PeerReading,
)
from aidc.telemetry.notify import Dispatcher, NotifyConfig
from aidc.telemetry.series import STALE, Family

H100 = "NVIDIA H100 80GB HBM3"
STEP = 15.0  # a scrape every 15 s
T0 = 1_800_000_000.0


# ----------------------------------------------------------------------------------------------- EWMA


def test_noise_with_the_same_mean_is_not_an_anomaly() -> None:
    rng = random.Random(6)
    ewma = EwmaDetector(alpha=0.1, z_threshold=4.0, warmup=30, min_std=0.1)
    found = [ewma.observe(T0 + i, "s", rng.gauss(60.0, 1.5)) for i in range(20_000)]
    flagged = [i for i, a in enumerate(found) if a is not None]
    # A lone 4-sigma reading happens about once in 7,000 (the z of an estimated variance has heavier tails
    # than a normal's 1 in 16,000); never twice in a row, which is why the monitor wants several hits.
    assert len(flagged) <= 10
    assert all(b - a > 1 for a, b in itertools.pairwise(flagged))


def test_spike_is_flagged_and_barely_moves_the_baseline() -> None:
    rng = random.Random(7)
    ewma = EwmaDetector(min_std=0.1)
    for i in range(200):
        ewma.observe(T0 + i, "s", rng.gauss(60.0, 1.0))
    before = ewma.baseline("s")
    assert before is not None
    spike = ewma.observe(T0 + 200, "s", 90.0)
    assert spike is not None
    assert spike.value == 90.0
    assert abs(spike.expected - 60.0) < 1.0
    assert spike.z > 10
    after = ewma.baseline("s")
    assert after is not None
    assert after[0] - before[0] < 0.2  # clipped and down-weighted
    assert after[1] < before[1] * 1.2
    assert ewma.observe(T0 + 201, "s", 60.5) is None
    assert ewma.observe(T0 + 202, "s", 75.0) is not None  # still sensitive right after


def test_lasting_shift_is_flagged_for_a_while_then_learnt() -> None:
    rng = random.Random(8)
    ewma = EwmaDetector(min_std=0.1)
    for i in range(200):
        ewma.observe(T0 + i, "s", rng.gauss(60.0, 1.0))
    flagged = [ewma.observe(T0 + 200 + i, "s", rng.gauss(70.0, 1.0)) is not None for i in range(200)]
    assert flagged[:3] == [True, True, True]
    assert 3 <= sum(flagged) < 40
    assert not any(flagged[100:])


def test_warmup_direction_and_floor() -> None:
    ewma = EwmaDetector(warmup=30, min_std=1.0, direction="high")
    assert [ewma.observe(T0 + i, "s", 60.0 + (50 if i % 2 else 0)) for i in range(30)] == [None] * 30
    flat = EwmaDetector(warmup=5, min_std=1.0, direction="high")
    for i in range(10):
        flat.observe(T0 + i, "k", 60.0)
    assert flat.observe(T0 + 10, "k", 61.0) is None  # one step of an integer sensor: z 1 at the floor
    assert flat.observe(T0 + 11, "k", 40.0) is None  # colder is not what "high" watches
    assert flat.observe(T0 + 12, "k", 70.0) is not None
    assert flat.observe(T0 + 13, "k", float("nan")) is None
    assert flat.forget(T0 + 13) == 1
    assert flat.baseline("k") is None


# ---------------------------------------------------------------------------------------------- peers


def readings(values: Sequence[float], utils: Sequence[float], group: str = H100) -> list[PeerReading]:
    return [PeerReading(i, group, u, v) for i, (v, u) in enumerate(zip(values, utils, strict=True))]


def test_peer_hotter_than_peers_at_same_utilization() -> None:
    peers = PeerDetector(min_delta=5.0)
    [hot] = peers.compare(T0, readings([60, 61, 59, 60, 72, 60, 61, 60], [95, 97, 100, 99, 96, 98, 100, 94]))
    assert hot.key == 4
    assert hot.expected == 60
    assert hot.peers == 7
    assert hot.z > 3.5


def test_whole_fleet_warming_together_is_not_flagged() -> None:
    peers = PeerDetector(min_delta=5.0)
    rng = random.Random(9)
    for step in range(40):
        base = 60 + 18 * step / 39
        temps = [base + rng.gauss(0, 0.7) for _ in range(8)]
        assert peers.compare(T0 + step, readings(temps, [98] * 8)) == []


def test_peers_are_at_similar_utilization_and_need_enough_of_them() -> None:
    peers = PeerDetector(min_delta=5.0)
    # Busy GPUs are hotter than idle ones: each is compared with its own kind only.
    assert peers.compare(T0, readings([70, 71, 69, 70, 70, 40, 41, 39, 40, 40], [100] * 5 + [5] * 5)) == []
    # A hot GPU with only three peers at its utilization is not judged.
    assert peers.compare(T0, readings([80, 60, 60, 60, 40, 40], [100, 100, 100, 100, 0, 0])) == []
    assert len(peers.compare(T0, readings([80, 60, 60, 60, 60], [100] * 5))) == 1
    # Other models are not peers.
    mixed = readings([80, 60], [100, 100]) + [PeerReading(9 + i, "A100", 100, 60) for i in range(4)]
    assert peers.compare(T0, mixed) == []


def test_slower_than_peers() -> None:
    clocks = PeerDetector(min_scale=15.0, min_delta=100.0, min_util=50.0, direction="low")
    [slow] = clocks.compare(T0, readings([1980, 1980, 1965, 1410, 1980, 1980], [100] * 6))
    assert slow.key == 3
    assert slow.z < -3.5
    assert clocks.compare(T0, readings([1980, 1980, 1965, 210, 1980, 1980], [100, 100, 100, 20, 100, 100])) == []


# -------------------------------------------------------------------------------------------- monitor


def scrape(
    temps: Sequence[float],
    utils: Sequence[float] | None = None,
    clocks: Sequence[float] | None = None,
    powers: Sequence[float] | None = None,
    host: str = "node-1",
) -> list[Family]:
    n = len(temps)
    labels = [
        {"gpu": str(i), "UUID": f"GPU-{host}-{i}", "device": f"nvidia{i}", "modelName": H100, "Hostname": host}
        for i in range(n)
    ]

    def family(series: names.SeriesName, values: Sequence[float]) -> Family:
        return Family(series.name, series.help, series.type, list(zip(labels, values, strict=True)))

    return [
        family(names.GPU_UTIL, utils if utils is not None else [98.0] * n),
        family(names.GPU_TEMP, temps),
        family(names.SM_CLOCK, clocks if clocks is not None else [1980.0] * n),
        family(names.POWER_USAGE, powers if powers is not None else [650.0] * n),
    ]


def by_name(alerts: Sequence[Alert], alertname: str) -> list[Alert]:
    return [a for a in alerts if a.name == alertname]


def test_gpu_climbing_while_peers_stay_is_warned_well_below_85() -> None:
    rng = random.Random(10)
    monitor = AnomalyMonitor()
    fired_at_temp = None
    for step in range(80):
        now = T0 + STEP * step
        climb = 60 + 18 * min(max(step - 20, 0), 36) / 36  # 60 C, then up to 78 C over 9 minutes
        temps = [60 + rng.gauss(0, 0.7) for _ in range(8)]
        temps[3] = climb
        monitor.observe(now, scrape(temps, [97 + rng.uniform(-3, 3) for _ in range(8)]))
        alerts = monitor.alerts(now)
        assert {a.labels["gpu"] for a in alerts} <= {"3"}
        firing = [a for a in by_name(alerts, "GpuTemperatureAnomaly") if a.state is AlertState.FIRING]
        if firing and fired_at_temp is None:
            fired_at_temp = climb
            [alert] = firing
    assert fired_at_temp is not None
    assert fired_at_temp < 70  # the hard threshold is 85 C
    assert alert.labels == {
        "alertname": "GpuTemperatureAnomaly",
        "severity": "warning",
        "gpu": "3",
        "UUID": "GPU-node-1-3",
        "modelName": H100,
        "Hostname": "node-1",
    }
    assert "peers" in alert.annotations["summary"]
    assert "robust z" in alert.annotations["description"]


def test_fleet_warming_together_raises_no_peer_alert() -> None:
    rng = random.Random(11)
    monitor = AnomalyMonitor()
    for step in range(80):
        now = T0 + STEP * step
        base = 60 + 18 * min(step, 60) / 60
        monitor.observe(now, scrape([base + rng.gauss(0, 0.7) for _ in range(8)]))
        assert by_name(monitor.alerts(now), "GpuTemperatureAnomaly") == []


def test_steady_noisy_fleet_raises_nothing() -> None:
    rng = random.Random(12)
    monitor = AnomalyMonitor()
    for step in range(400):
        now = T0 + STEP * step
        temps = [60 + rng.gauss(0, 1.0) for _ in range(8)]
        clocks = [1980 - abs(rng.gauss(0, 10)) for _ in range(8)]
        powers = [650 + rng.gauss(0, 15) for _ in range(8)]
        monitor.observe(now, scrape(temps, clocks=clocks, powers=powers))
        assert monitor.alerts(now) == []


def test_slow_gpu_fires_then_resolves_through_the_dispatcher() -> None:
    monitor = AnomalyMonitor(hold=120, min_hits=2)
    dispatcher = Dispatcher(NotifyConfig(group_wait=30, group_interval=60))
    statuses = []
    for step in range(60):
        now = T0 + STEP * step
        clocks = [1980.0] * 8
        if 10 <= step < 20:
            clocks[5] = 1400.0  # throttled for 150 s
        monitor.observe(now, scrape([60.0] * 8, clocks=clocks))
        dispatcher.update(monitor.alerts(now), now)
        for note in dispatcher.due(now):
            dispatcher.mark_sent(note, now)
            statuses.append((note.body["status"], note.body["alerts"][0]["labels"]["gpu"]))
    assert statuses == [("firing", "5"), ("resolved", "5")]


def test_series_anomaly_without_peers_at_steady_power() -> None:
    monitor = AnomalyMonitor()
    fired = None
    for step in range(120):
        now = T0 + STEP * step
        temps = [62.0 + (step % 3) * 0.5, 58.0]
        if step >= 80:
            temps[0] = 74.0  # a fan fails: hotter at the same power draw
        monitor.observe(now, scrape(temps))
        series = by_name(monitor.alerts(now), "SeriesAnomaly")
        if fired is None and any(a.state is AlertState.FIRING for a in series):
            fired = series[0]
    assert fired is not None
    assert fired.labels["series"] == names.GPU_TEMP.name
    assert fired.labels["gpu"] == "0"
    assert "74" in fired.annotations["description"]


def test_power_transition_settles_before_ewma_judges() -> None:
    monitor = AnomalyMonitor()
    for step in range(200):
        now = T0 + STEP * step
        busy = step >= 100
        # A job starts: power jumps, temperature follows over a few minutes (not an anomaly).
        temp = 35.0 + (35.0 * min(step - 100, 12) / 12 if busy else 0.0)
        monitor.observe(now, scrape([temp, temp - 1], powers=[650.0 if busy else 80.0] * 2))
        assert monitor.alerts(now) == []


def test_stale_and_unrelated_series_are_ignored() -> None:
    monitor = AnomalyMonitor()
    families = [*scrape([STALE] * 8), Family("aidc_node_load1", "", "gauge", [({"node": "n"}, 1.0)])]
    monitor.observe(T0, families)
    assert monitor.alerts(T0) == []
