"""Anomaly detection beyond fixed thresholds: warn before a GPU reaches the hard limit (85 C, say).

Two detectors, both pure (the time is passed in):
- `EwmaDetector`: each series against its own recent past (an exponentially weighted mean and variance).
- `PeerDetector`: each GPU against GPUs of the same model at similar utilization at the same time, with a
  robust z-score (median and MAD), so a whole fleet warming together (ambient) is not an anomaly.

`AnomalyMonitor` feeds them from collector families and turns findings into warning `Alert`s that flow
through the same notification dispatch as rule alerts."""

from __future__ import annotations

import bisect
import math
import statistics
from collections import deque
from collections.abc import Container, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

from aidc.telemetry import names
from aidc.telemetry.alert import Alert, AlertState
from aidc.telemetry.series import Family

Direction = Literal["high", "low", "both"]
MAD_TO_STD = 1.4826  # MAD of a normal distribution times this is its standard deviation


@dataclass(frozen=True)
class Anomaly:
    """`value` departs from `expected` by `z` times `scale` (a standard deviation, or its robust estimate).
    `peers` is how many peers `expected` was computed from (0 for the EWMA detector)."""

    key: Hashable
    at: float
    value: float
    expected: float
    scale: float
    z: float
    peers: int = 0


def _flagged(z: float, threshold: float, direction: Direction) -> bool:
    if direction == "high":
        return z > threshold
    if direction == "low":
        return z < -threshold
    return abs(z) > threshold


def _z(diff: float, scale: float) -> float:
    if scale > 0:
        return diff / scale
    return 0.0 if diff == 0 else math.copysign(math.inf, diff)


# ----------------------------------------------------------------------------------------------- EWMA


@dataclass
class _Ewma:
    mean: float
    last_seen: float
    var: float = 0.0  # EWMA of the squared prediction error (value minus the mean before it)
    n: int = 1


class EwmaDetector:
    """Per-series EWMA mean (weight `alpha`) and variance (weight `var_alpha`, default alpha/4: a slower
    variance makes the z-score less jumpy, halving false alarms on pure noise). After `warmup` samples a
    value whose z-score exceeds `z_threshold` in `direction` is an anomaly. Early samples are weighted
    1/n (a plain mean) so the first value does not bias the baseline. An outlier updates the baseline
    clipped to the threshold and with `outlier_weight` times the weight, so a spike barely moves it while a
    lasting shift is learnt within tens of samples. `min_std` floors the deviation at the series'
    resolution (a flat integer series would otherwise flag every change of 1)."""

    def __init__(
        self,
        alpha: float = 0.1,
        z_threshold: float = 4.0,
        warmup: int = 30,
        min_std: float = 0.0,
        *,
        var_alpha: float | None = None,
        outlier_weight: float = 0.2,
        direction: Direction = "both",
    ) -> None:
        self.alpha = alpha
        self.var_alpha = alpha / 4 if var_alpha is None else var_alpha
        self.z_threshold = z_threshold
        self.warmup = max(warmup, 2)
        self.min_std = min_std
        self.outlier_weight = outlier_weight
        self.direction: Direction = direction
        self._state: dict[Hashable, _Ewma] = {}

    def observe(self, now: float, labels_key: Hashable, value: float) -> Anomaly | None:
        """Test `value` against the series' baseline, then learn from it."""
        if not math.isfinite(value):
            return None  # NaN (stale marker, missing reading) says nothing about the baseline
        state = self._state.get(labels_key)
        if state is None:
            self._state[labels_key] = _Ewma(value, now)
            return None
        state.last_seen = now
        diff = value - state.mean
        std = max(math.sqrt(state.var), self.min_std)
        weight = 1.0
        found: Anomaly | None = None
        if state.n >= self.warmup:
            z = _z(diff, std)
            if abs(z) > self.z_threshold:
                weight = self.outlier_weight
                diff = math.copysign(self.z_threshold * std, diff)
                if _flagged(z, self.z_threshold, self.direction):
                    found = Anomaly(labels_key, now, value, state.mean, std, z)
        state.n += 1
        rate = max(self.alpha, 1.0 / state.n) * weight
        var_rate = max(self.var_alpha, 1.0 / (state.n - 1)) * weight
        state.mean += rate * diff
        state.var = (1.0 - var_rate) * state.var + var_rate * diff * diff
        return found

    def baseline(self, labels_key: Hashable) -> tuple[float, float, int] | None:
        """(mean, standard deviation, samples) of a series, None if never seen."""
        state = self._state.get(labels_key)
        return None if state is None else (state.mean, math.sqrt(state.var), state.n)

    def forget(self, before: float) -> int:
        """Drop series not observed since `before` (GPUs gone); how many."""
        gone = [k for k, s in self._state.items() if s.last_seen < before]
        for key in gone:
            del self._state[key]
        return len(gone)


# ---------------------------------------------------------------------------------------------- peers


@dataclass(frozen=True)
class PeerReading:
    """One GPU's reading: peers share `group` (the model) and have a similar `util`."""

    key: Hashable
    group: str
    util: float
    value: float


class PeerDetector:
    """Compares each GPU with peers of its group whose utilization is within `util_window` points (the
    `max_peers` nearest in utilization, to bound the work on large fleets). With at least `min_peers` peers,
    z = (value - median) / max(1.4826 * MAD, min_scale); flagged when past `z_threshold` in `direction`
    and at least `min_delta` away from the median (a tight fleet must not flag a 2-degree difference).
    Readings below `min_util` take no part (idle clocks, for one, follow power management, not health)."""

    def __init__(
        self,
        *,
        z_threshold: float = 3.5,
        min_peers: int = 4,
        util_window: float = 10.0,
        min_scale: float = 1.0,
        min_delta: float = 0.0,
        min_util: float = 0.0,
        max_peers: int = 64,
        direction: Direction = "high",
    ) -> None:
        self.z_threshold = z_threshold
        self.min_peers = min_peers
        self.util_window = util_window
        self.min_scale = min_scale
        self.min_delta = min_delta
        self.min_util = min_util
        self.max_peers = max(max_peers, min_peers)
        self.direction: Direction = direction

    def compare(
        self, now: float, readings: Iterable[PeerReading], only: Container[Hashable] | None = None
    ) -> list[Anomaly]:
        """The anomalous readings (of those whose key is in `only`, when given), each against all others."""
        groups: dict[str, list[PeerReading]] = {}
        for r in readings:
            if math.isfinite(r.util) and math.isfinite(r.value) and r.util >= self.min_util:
                groups.setdefault(r.group, []).append(r)
        found: list[Anomaly] = []
        for _, members in sorted(groups.items()):
            members.sort(key=lambda r: r.util)
            utils = [r.util for r in members]
            for i, reading in enumerate(members):
                if only is not None and reading.key not in only:
                    continue
                peers = self._peers(members, utils, i)
                if len(peers) < self.min_peers:
                    continue
                expected = statistics.median(peers)
                mad = statistics.median(abs(p - expected) for p in peers)
                scale = max(MAD_TO_STD * mad, self.min_scale)
                diff = reading.value - expected
                z = _z(diff, scale)
                if _flagged(z, self.z_threshold, self.direction) and abs(diff) >= self.min_delta:
                    found.append(Anomaly(reading.key, now, reading.value, expected, scale, z, len(peers)))
        return found

    def _peers(self, members: Sequence[PeerReading], utils: Sequence[float], i: int) -> list[float]:
        """Values of the nearest-in-utilization members within the window, the reading itself excluded."""
        u = utils[i]
        lo = bisect.bisect_left(utils, u - self.util_window)
        hi = bisect.bisect_right(utils, u + self.util_window)
        left, right = i - 1, i + 1
        out: list[float] = []
        while len(out) < self.max_peers and (left >= lo or right < hi):
            if right >= hi or (left >= lo and u - utils[left] <= utils[right] - u):
                out.append(members[left].value)
                left -= 1
            else:
                out.append(members[right].value)
                right += 1
        return out


# -------------------------------------------------------------------------------------------- monitor

GPU_ALERT_LABELS = ("gpu", "UUID", "modelName", "Hostname")
TEMPERATURE_ANOMALY = "GpuTemperatureAnomaly"
SLOWER_THAN_PEERS = "GpuSlowerThanPeers"
SERIES_ANOMALY = "SeriesAnomaly"


@dataclass(frozen=True)
class Watch:
    """A series the EWMA detector follows, per GPU, against its own history at a similar power draw."""

    series: str
    min_std: float
    direction: Direction = "high"


# Temperatures only: at a given power draw a GPU's temperature depends on its cooling (fans, airflow,
# inlet, thermal paste), not on its job, so a rise there is news; HBM heat precedes HBM failures. Power,
# clocks and framebuffer use follow the job and would flag every job change (peers cover slow clocks).
EWMA_WATCHED = (Watch(names.GPU_TEMP.name, 1.0), Watch(names.MEMORY_TEMP.name, 1.0))

_INPUTS = {names.GPU_UTIL.name, names.GPU_TEMP.name, names.SM_CLOCK.name, names.POWER_USAGE.name}
_GpuKey = tuple[str, str, str]


@dataclass
class _Gpu:
    labels: dict[str, str]
    at: float
    values: dict[str, float] = field(default_factory=dict)
    band: int | None = None  # power band the EWMA baselines are kept per
    band_since: float = 0.0


@dataclass
class _Track:
    """One anomaly alert: its hits in the last `hold` seconds and its episode."""

    labels: dict[str, str]
    last: Anomaly
    active_at: float
    last_hit: float
    hits: deque[float] = field(default_factory=deque)
    fired_at: float | None = None
    resolved_at: float | None = None


class AnomalyMonitor:
    """Families in, warning alerts out. Call `observe` with each scrape (one node's or the whole fleet's:
    peers are the GPUs seen in the last `peer_max_age` seconds) and `alerts` when evaluating rules.

    An alert is PENDING from its first anomalous reading, FIRING once `min_hits` readings within `hold`
    seconds were anomalous, and stays FIRING while any was in the last `hold` seconds; then RESOLVED
    (at last hit + hold) and reported as such for `keep_resolved` seconds, so the dispatcher sends the
    resolved notice. EWMA readings count only once the GPU's power draw stayed in one `power_band`-wide band
    for `settle` seconds: temperature lags power by minutes, and a transition is not an anomaly."""

    def __init__(
        self,
        *,
        hold: float = 300.0,
        min_hits: int = 3,
        keep_resolved: float = 900.0,
        peer_max_age: float = 60.0,
        settle: float = 120.0,
        power_band: float = 50.0,
        ewma_alpha: float = 0.1,
        ewma_z: float = 4.0,
        ewma_warmup: int = 30,
        watched: Sequence[Watch] = EWMA_WATCHED,
        temperature_peers: PeerDetector | None = None,
        clock_peers: PeerDetector | None = None,
        generator_url: str = "",
    ) -> None:
        self.hold, self.min_hits, self.keep_resolved = hold, max(min_hits, 1), keep_resolved
        self.peer_max_age, self.settle, self.power_band = peer_max_age, settle, power_band
        self.generator_url = generator_url
        self.temperature_peers = temperature_peers or PeerDetector(min_scale=1.0, min_delta=5.0, direction="high")
        self.clock_peers = clock_peers or PeerDetector(min_scale=15.0, min_delta=100.0, min_util=50.0, direction="low")
        self.ewma = {
            w.series: EwmaDetector(ewma_alpha, ewma_z, ewma_warmup, w.min_std, direction=w.direction) for w in watched
        }
        self._gpus: dict[_GpuKey, _Gpu] = {}
        self._tracks: dict[tuple[str, _GpuKey, str], _Track] = {}
        self._last_gc = -math.inf

    def observe(self, now: float, families: Sequence[Family]) -> None:
        seen = self._ingest(now, families)
        fresh = [g for g in self._gpus.items() if g[1].at >= now - self.peer_max_age]
        for detector, series, alertname in (
            (self.temperature_peers, names.GPU_TEMP.name, TEMPERATURE_ANOMALY),
            (self.clock_peers, names.SM_CLOCK.name, SLOWER_THAN_PEERS),
        ):
            readings = [
                PeerReading(key, gpu.labels.get("modelName", ""), gpu.values[names.GPU_UTIL.name], gpu.values[series])
                for key, gpu in fresh
                if names.GPU_UTIL.name in gpu.values and series in gpu.values
            ]
            for found in detector.compare(now, readings, only=seen):
                self._hit(alertname, cast(_GpuKey, found.key), found, "")
        for key in seen:
            self._observe_ewma(now, key, self._gpus[key])
        if now - self._last_gc >= 600:
            self._gc(now)

    def _ingest(self, now: float, families: Sequence[Family]) -> set[_GpuKey]:
        seen: set[_GpuKey] = set()
        for family in families:
            if family.name not in _INPUTS and family.name not in self.ewma:
                continue
            for labels, value in family.samples:
                key = (labels.get("Hostname", ""), labels.get("UUID", ""), labels.get("gpu", ""))
                gpu = self._gpus.get(key)
                if gpu is None:
                    gpu = self._gpus[key] = _Gpu({}, now)
                if key not in seen:  # a new scrape of this GPU: forget the last one's values
                    seen.add(key)
                    if gpu.at < now - 2 * self.settle:
                        gpu.band = None  # back after a gap: settle again
                    gpu.at, gpu.values = now, {}
                    gpu.labels = {n: labels[n] for n in GPU_ALERT_LABELS if labels.get(n)}
                if math.isfinite(value):  # NaN: stale marker or no reading
                    gpu.values[family.name] = value
        return seen

    def _observe_ewma(self, now: float, key: _GpuKey, gpu: _Gpu) -> None:
        power = gpu.values.get(names.POWER_USAGE.name)
        if power is None:
            return
        width = self.power_band
        if gpu.band is None or not (gpu.band - 0.2) * width <= power < (gpu.band + 1.2) * width:
            gpu.band, gpu.band_since = int(power // width), now  # hysteresis: 20% of a band either side
        if now - gpu.band_since < self.settle:
            return
        for series, detector in self.ewma.items():
            value = gpu.values.get(series)
            if value is not None:
                found = detector.observe(now, (key, series, gpu.band), value)
                if found is not None:
                    self._hit(SERIES_ANOMALY, key, found, series)

    def _hit(self, alertname: str, key: _GpuKey, found: Anomaly, series: str) -> None:
        labels = {"alertname": alertname, "severity": "warning", **self._gpus[key].labels}
        if series:
            labels["series"] = series
        track = self._tracks.get((alertname, key, series))
        now = found.at
        if track is not None:
            self._settle(track, now)
        if track is None or track.resolved_at is not None or (track.fired_at is None and not track.hits):
            track = self._tracks[(alertname, key, series)] = _Track(labels, found, now, now)
        track.labels, track.last, track.last_hit = labels, found, now
        track.hits.append(now)
        if track.fired_at is None and len(track.hits) >= self.min_hits:
            track.fired_at = now

    def _settle(self, track: _Track, now: float) -> None:
        while track.hits and track.hits[0] < now - self.hold:
            track.hits.popleft()
        if track.fired_at is not None and track.resolved_at is None and not track.hits:
            track.resolved_at = track.last_hit + self.hold

    def alerts(self, now: float) -> list[Alert]:
        """The anomaly alerts: PENDING, FIRING, or RESOLVED (for `keep_resolved` seconds)."""
        out: list[Alert] = []
        for ident, track in list(self._tracks.items()):
            self._settle(track, now)
            if track.fired_at is None and not track.hits:
                del self._tracks[ident]  # never fired: nothing to tell
                continue
            if track.resolved_at is not None and now - track.resolved_at >= self.keep_resolved:
                del self._tracks[ident]
                continue
            if track.resolved_at is not None:
                state = AlertState.RESOLVED
            else:
                state = AlertState.FIRING if track.fired_at is not None else AlertState.PENDING
            out.append(
                Alert(
                    labels=dict(track.labels),
                    annotations=_annotations(track.labels, track.last),
                    state=state,
                    active_at=track.active_at,
                    value=track.last.value,
                    fired_at=track.fired_at,
                    resolved_at=track.resolved_at,
                    generator_url=self.generator_url,
                )
            )
        return out

    def _gc(self, now: float) -> None:
        """Forget GPUs and baselines not seen for a day (GPUs replaced, nodes gone)."""
        self._last_gc = now
        for key in [k for k, g in self._gpus.items() if g.at < now - 86400]:
            del self._gpus[key]
        for detector in self.ewma.values():
            detector.forget(now - 86400)


def _annotations(labels: Mapping[str, str], a: Anomaly) -> dict[str, str]:
    where = f"GPU {labels.get('gpu', '?')} on {labels.get('Hostname', '?')}"
    model = labels.get("modelName", "")
    if labels["alertname"] == TEMPERATURE_ANOMALY:
        return {
            "summary": f"{where} runs hotter than its peers",
            "description": f"{where} is at {a.value:.0f} C where {a.peers} {model} GPUs at similar utilization are "
            f"at {a.expected:.0f} C (robust z {a.z:.1f}). Check its cooling before it reaches the hard limit.",
        }
    if labels["alertname"] == SLOWER_THAN_PEERS:
        return {
            "summary": f"{where} clocks slower than its peers",
            "description": f"{where} runs its SMs at {a.value:.0f} MHz where {a.peers} {model} GPUs at similar "
            f"utilization run at {a.expected:.0f} MHz (robust z {a.z:.1f}). Check its clock throttle reasons.",
        }
    series = labels.get("series", "")
    return {
        "summary": f"{series} of {where} left its usual range",
        "description": f"{series} of {where} is {a.value:.4g} where its recent average at this power draw is "
        f"{a.expected:.4g} (z {a.z:.1f}).",
    }
