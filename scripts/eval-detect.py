#!/usr/bin/env python3
"""Evaluate `steward detect` the way issue 14 asks, in one run.

1. In-sample: `steward detect` on every nab-dev file, scored by
   shared/tools/nab_score.py (standard profile, threshold optimized on all of
   nab-dev).
2. Leave-one-category-out: for each nab-dev category that has windows, the
   threshold is optimized on the other three categories (artificialNoAnomaly is
   always on the training side: no windows, but its false positives count),
   frozen, and the held-out category is scored alone at it.
3. Generator sanity check: seeded, labelled server-metric series (CPU %,
   memory %, disk I/O, request counts, latency, temperature, queue depth, and
   keystroke-like counts) with heavy tails, bursts, daily cycles and missing
   rows; one anomaly per series of six kinds (level shift after a deploy,
   memory-leak ramp, stuck sensor, spike burst, lost daily pattern, latency
   variance increase), plus series with no anomaly. Each is scored by
   `steward detect`, and alarms are counted at the frozen in-sample threshold
   from step 1: a kind is caught in a series when any score inside its window
   reaches the threshold; a false alarm is a rising edge (score >= threshold,
   previous row below it) outside every window.

All NAB scoring is done by nab_score.py (imported as a module; run as a
subprocess when it cannot be imported or with --subprocess-scoring). Standard
library only. Exit status 0 whatever the numbers (this is a report); 1 when
`steward detect` failed on a file, naming it; 2 on bad arguments or inputs.

    scripts/eval-detect.sh                 # builds release steward, then runs this
    scripts/eval-detect.py --steward target/release/steward --seeds 3 --keep /tmp/gen --json report.json
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import datetime as dt
import importlib.util
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared")
NAB_CATEGORIES = ["artificialNoAnomaly", "artificialWithAnomaly", "realAdExchange", "realTraffic"]
NO_WINDOW_CATEGORY = "artificialNoAnomaly"
PROFILE = "standard"
TS_FMT = "%Y-%m-%d %H:%M:%S"
WIN_FMT = "%Y-%m-%d %H:%M:%S.%f"  # nab-dev's windows.json spelling

# Acceptance of issue 14.
LOCO_MEAN_MIN = 65.0
LOCO_FOLD_MIN = 50.0
IN_SAMPLE_MIN = 72.0
FA_PER_1K_MAX = 1.0


class StewardFailed(Exception):
    pass


# --------------------------------------------------------------------------
# running steward


def run_detect_all(steward: str, jobs: list[tuple[str, str, str]], workers: int, cwd: str) -> dict:
    """jobs: (label, input csv, output csv). Returns {label: stderr text}.
    Raises StewardFailed naming every file steward failed on."""
    def one(job):
        label, inp, out = job
        os.makedirs(os.path.dirname(out), exist_ok=True)
        try:
            p = subprocess.run([steward, "detect", "--input", inp, "--output", out],
                               cwd=cwd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            return label, None, str(e)
        return label, p.returncode, p.stderr

    stderr, failed = {}, []
    with cf.ThreadPoolExecutor(max_workers=workers) as ex:
        for label, rc, err in ex.map(one, jobs):
            stderr[label] = err
            if rc != 0:
                failed.append((label, rc, err))
    if failed:
        lines = []
        for label, rc, err in sorted(failed):
            tail = " | ".join(err.strip().splitlines()[-3:])
            lines.append(f"steward detect failed on {label} (exit {rc}): {tail}")
        raise StewardFailed("\n".join(lines))
    return stderr


def warned(stderr: dict) -> list[str]:
    return sorted(k for k, v in stderr.items() if "warning" in v.lower())


def read_scores(path: str) -> list[float]:
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = [h.strip() for h in next(r)]
        ia = header.index("anomaly_score")
        return [float(row[ia]) for row in r if row]


# --------------------------------------------------------------------------
# NAB scoring, by nab_score.py


def load_nab_score(path: str):
    spec = importlib.util.spec_from_file_location("nab_score", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name in ("FileRows", "score_at", "optimize", "PROFILES", "read_results", "read_data_timestamps"):
        if not hasattr(mod, name):
            raise ImportError(f"{path} has no {name}")
    return mod


def normalize(r: dict, prof: dict, n_windows: int) -> dict:
    """The normalization nab_score.py's main() applies (100 perfect, 0 never fires)."""
    null = -prof["fn"] * r["windows_scorable"]
    perfect = prof["tp"] * n_windows
    r["null"], r["perfect"] = null, perfect
    r["normalized"] = 100.0 * (r["raw"] - null) / (perfect - null) if perfect != null else float("nan")
    return r


class ImportScorer:
    """nab_score.py's own functions, on one set of results (files cached)."""

    def __init__(self, mod, windows_path: str, data_dir: str, results_dir: str):
        self.mod, self.data_dir, self.results_dir = mod, data_dir, results_dir
        self.windows = json.load(open(windows_path))
        self.cache = {}

    def _file(self, key: str):
        if key not in self.cache:
            ts, sc = self.mod.read_results(os.path.join(self.results_dir, key))
            dts = self.mod.read_data_timestamps(os.path.join(self.data_dir, key))
            if len(dts) != len(ts):
                raise SystemExit(f"{key}: {len(ts)} results rows, {len(dts)} data rows")
            bad = sum(1 for x, y in zip(ts, dts) if x != y)
            if bad:
                print(f"warning: {key}: {bad} results timestamps differ from the data file's; "
                      "scoring by row position as NAB does", file=sys.stderr)
            self.cache[key] = self.mod.FileRows(key, dts, sc, self.windows[key])
        return self.cache[key]

    def score(self, keys: list[str], threshold: float | None = None) -> dict:
        files = [self._file(k) for k in keys]
        prof = self.mod.PROFILES[PROFILE]
        thr = self.mod.optimize(files, prof)[0] if threshold is None else threshold
        r = self.mod.score_at(files, prof, thr)
        return normalize(r, prof, sum(f.n_windows for f in files))


class SubprocessScorer:
    """nab_score.py run as a program (--files, --threshold, --json)."""

    def __init__(self, script: str, windows_path: str, data_dir: str, results_dir: str):
        self.script, self.windows_path, self.data_dir, self.results_dir = script, windows_path, data_dir, results_dir

    def score(self, keys: list[str], threshold: float | None = None) -> dict:
        with tempfile.TemporaryDirectory() as td:
            out = os.path.join(td, "score.json")
            cmd = [sys.executable, self.script, "--windows", self.windows_path, "--data", self.data_dir,
                   "--results", self.results_dir, "--json", out, "--files", *keys]
            if threshold is not None:
                cmd += ["--threshold", repr(threshold)]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(f"nab_score.py failed ({p.returncode}): {p.stderr.strip()}")
            return json.load(open(out))["profiles"][PROFILE]


def make_scorer(args, windows_path: str, data_dir: str, results_dir: str):
    if not args.subprocess_scoring:
        try:
            return ImportScorer(load_nab_score(args.nab_score), windows_path, data_dir, results_dir)
        except Exception as e:  # noqa: BLE001 - any import problem: fall back
            print(f"note: cannot import {args.nab_score} ({e}); running it as a subprocess", file=sys.stderr)
    return SubprocessScorer(args.nab_score, windows_path, data_dir, results_dir)


# --------------------------------------------------------------------------
# the generator of labelled server-metric series


def daily_shape(hour: float) -> float:
    """0 at 03:00, 1 at 15:00, smooth."""
    return 0.5 - 0.5 * math.cos(2.0 * math.pi * (hour - 3.0) / 24.0)


def student_t(rng: random.Random, df: int, cap: float = 10.0) -> float:
    """Student-t with df degrees of freedom (a normal over the root of a
    chi-square), scaled to unit variance (df > 2), clipped at +-cap."""
    z = rng.gauss(0.0, 1.0)
    v = sum(rng.gauss(0.0, 1.0) ** 2 for _ in range(df))
    t = z / math.sqrt(v / df) / math.sqrt(df / (df - 2.0))
    return max(-cap, min(cap, t))


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0.0:
        return 0
    if lam < 30.0:
        lim, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= rng.random()
            if p <= lim:
                return k
            k += 1
    return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))


class Base:
    """A base series: a deterministic expected level `mean` (daily cycle etc.),
    noise drawn around it (`noise(mean)` returns value - mean, so the spread
    can be scaled), and `post` (clip, round). `scale` is a typical noise
    spread, `mult` says whether anomaly sizes are relative to the level."""

    name = ""
    unit = ""
    mult = False
    steps = (60, 300)

    def __init__(self, rng: random.Random, step: int, daily: bool, heavy: bool = False):
        self.rng, self.step, self.daily, self.heavy = rng, step, daily, heavy
        self.setup()

    def setup(self):
        pass

    def mean(self, hours: list[float], weekdays: list[int]) -> list[float]:
        raise NotImplementedError

    def noise(self, mean: list[float]) -> list[float]:
        raise NotImplementedError

    def post(self, v: float) -> float:
        return v

    def fmt(self, v: float) -> str:
        return f"{v:.2f}"


class CpuPct(Base):
    name, unit = "cpu_pct", "%"

    def setup(self):
        r = self.rng
        self.level = r.uniform(10, 30)
        self.amp = r.uniform(20, 40) if self.daily else 0.0
        self.scale = r.uniform(1.0, 2.5)
        # an hourly cron job: a few minutes of extra CPU at the top of the hour
        self.cron = r.uniform(8, 15) if r.random() < 0.5 else 0.0
        self.cron_rows = max(1, int(r.uniform(2, 5) * 60 / self.step))

    def mean(self, hours, weekdays):
        out = []
        for h in hours:
            m = self.level + self.amp * daily_shape(h)
            minute_rows = int((h % 1.0) * 3600 / self.step + 1e-6)
            if self.cron and minute_rows < self.cron_rows:
                m += self.cron
            out.append(m)
        return out

    def noise(self, mean):
        return [self.scale * student_t(self.rng, 3) for _ in mean]

    def post(self, v):
        return min(100.0, max(0.0, v))


class MemoryPct(Base):
    name, unit = "memory_pct", "%"

    def setup(self):
        r = self.rng
        self.level = r.uniform(30, 60)
        self.scale = r.uniform(0.3, 0.8)
        # a garbage-collected heap: a sawtooth of 2-5 % every 30-120 minutes
        self.saw = r.uniform(2, 5) if r.random() < 0.5 else 0.0
        self.period = max(4, int(r.uniform(30, 120) * 60 / self.step))

    def mean(self, hours, weekdays):
        return [self.level + self.saw * ((i % self.period) / self.period) for i in range(len(hours))]

    def noise(self, mean):
        return [self.scale * self.rng.gauss(0, 1) for _ in mean]

    def post(self, v):
        return min(100.0, max(0.0, v))


class DiskIo(Base):
    name, unit = "disk_io_mbps", "MB/s"
    mult = True

    def setup(self):
        r = self.rng
        self.level = r.uniform(5, 30)
        self.sigma = r.uniform(0.25, 0.4)
        self.scale = self.sigma * self.level
        self.backup_start = r.uniform(1, 4)  # nightly backup, in hours
        self.backup_len = r.uniform(0.5, 1.0)
        self.backup_mult = r.uniform(3, 6)

    def mean(self, hours, weekdays):
        out = []
        for h in hours:
            hd = h % 24.0
            b = self.daily and self.backup_start <= hd < self.backup_start + self.backup_len
            out.append(self.level * (self.backup_mult if b else 1.0))
        return out

    def noise(self, mean):
        r, out, burst = self.rng, [], 1.0
        for m in mean:
            # bursty: a Markov burst state with a Pareto-sized multiplier
            if burst > 1.0 and r.random() < 0.6:
                pass
            elif r.random() < 0.01:
                burst = min(15.0, 2.0 + 1.5 * (r.paretovariate(2.5) - 1.0))
            else:
                burst = 1.0
            out.append(m * math.exp(self.sigma * r.gauss(0, 1)) * burst - m)
        return out

    def post(self, v):
        return max(0.0, v)


class RequestRate(Base):
    name, unit = "request_count", "requests/step"
    mult = True

    def setup(self):
        r = self.rng
        self.per_min = r.uniform(30, 300)
        self.night = r.uniform(0.15, 0.35)
        self.weekend = r.uniform(0.6, 0.85)

    def mean(self, hours, weekdays):
        base = self.per_min * self.step / 60.0
        out = []
        for h, wd in zip(hours, weekdays):
            d = self.night + (1 - self.night) * daily_shape(h) if self.daily else 1.0
            out.append(base * d * (self.weekend if wd >= 5 else 1.0))
        return out

    def noise(self, mean):
        r, out, burst = self.rng, [], 1.0
        for m in mean:
            # retry storms and crawlers: short bursts of 1.5-3x
            if burst > 1.0 and r.random() < 0.6:
                pass
            elif r.random() < 0.004:
                burst = r.uniform(1.5, 3.0)
            else:
                burst = 1.0
            out.append(poisson(r, m * burst) - m)
        return out

    @property
    def scale(self):
        return math.sqrt(self.per_min * self.step / 60.0)

    def post(self, v):
        return float(max(0, int(round(v))))

    def fmt(self, v):
        return str(int(v))


class LatencyMs(Base):
    name, unit = "latency_ms", "ms"
    mult = True

    def setup(self):
        r = self.rng
        self.median = r.uniform(20, 200)
        self.load = r.uniform(0.2, 0.5) if self.daily else 0.0
        self.sigma = r.uniform(0.15, 0.3)
        self.tail_p, self.tail_a = (0.02, 1.3) if self.heavy else (0.01, 1.5)
        self.scale = self.sigma * self.median

    def mean(self, hours, weekdays):
        return [self.median * (1 + self.load * daily_shape(h)) for h in hours]

    def noise(self, mean):
        r, out = self.rng, []
        for m in mean:
            # slow requests: a Pareto tail, cut at the timeout (30x the median)
            tail = min(30.0, r.paretovariate(self.tail_a)) if r.random() < self.tail_p else 1.0
            out.append(m * math.exp(self.sigma * r.gauss(0, 1)) * tail - m)
        return out

    def post(self, v):
        return max(0.1, v)

    def fmt(self, v):
        return f"{v:.1f}"


class TemperatureC(Base):
    name, unit = "temperature_c", "C"

    def setup(self):
        r = self.rng
        self.level = r.uniform(35, 55)
        self.amp = r.uniform(3, 7) if self.daily else 0.0
        self.q = 0.1 if r.random() < 0.7 else 0.25  # the sensor's resolution
        self.phi = 0.97
        self.scale = 0.6  # stationary sd of the AR(1) part

    def mean(self, hours, weekdays):
        return [self.level + self.amp * (daily_shape(h) - 0.5) for h in hours]

    def noise(self, mean):
        r, out, ar = self.rng, [], 0.0
        innov = self.scale * math.sqrt(1 - self.phi ** 2)
        for _ in mean:
            ar = self.phi * ar + innov * student_t(r, 4)
            out.append(ar + 0.05 * r.gauss(0, 1))
        return out

    def post(self, v):
        return round(v / self.q) * self.q


class QueueDepth(Base):
    name, unit = "queue_depth", "jobs"
    mult = True

    def setup(self):
        r = self.rng
        self.level = r.uniform(8, 30)
        self.scale = math.sqrt(self.level) * 1.5

    def mean(self, hours, weekdays):
        return [self.level * ((0.5 + daily_shape(h)) if self.daily else 1.0) for h in hours]

    def noise(self, mean):
        r, out, ar, backlog = self.rng, [], 0.0, 0.0
        for m in mean:
            ar = 0.9 * ar + 0.3 * math.sqrt(1 - 0.81) * r.gauss(0, 1)
            backlog *= 0.7
            if r.random() < 0.003:  # a backlog builds and drains
                backlog += m * r.uniform(2, 6)
            out.append(poisson(r, m * math.exp(ar) + backlog) - m)
        return out

    def post(self, v):
        return float(max(0, int(round(v))))

    def fmt(self, v):
        return str(int(v))


class Keystrokes(Base):
    """Keystroke-like event counts per minute: zero when idle, bursts of
    typing in sessions, mostly in working hours."""
    name, unit = "keystrokes", "events/min"
    mult = True
    steps = (60,)

    def setup(self):
        self.rate = self.rng.uniform(40, 200)
        self.scale = math.sqrt(self.rate)

    def mean(self, hours, weekdays):
        return [0.0 for _ in hours]

    def noise(self, mean):
        raise RuntimeError("keystrokes are drawn in values()")

    def values(self, hours, weekdays):
        r, out, active = self.rng, [], False
        for h, wd in zip(hours, weekdays):
            work = wd < 5 and 9 <= h % 24 < 18
            if active:
                active = r.random() >= (0.08 if work else 0.3)
            else:
                active = r.random() < (0.15 if work else 0.004)
            out.append(float(poisson(r, self.rate * math.exp(0.5 * r.gauss(0, 1)))) if active else 0.0)
        return out

    def fmt(self, v):
        return str(int(v))


BASES = {c.name: c for c in (CpuPct, MemoryPct, DiskIo, RequestRate, LatencyMs, TemperatureC, QueueDepth, Keystrokes)}

# kind -> the base series its seeds go on (seed j uses bases[j % 3])
KINDS = [
    ("level_shift", ["cpu_pct", "latency_ms", "request_count"]),
    ("memory_leak_ramp", ["memory_pct", "queue_depth", "latency_ms"]),
    ("stuck_sensor", ["temperature_c", "cpu_pct", "disk_io_mbps"]),
    ("spike_burst", ["latency_ms", "request_count", "disk_io_mbps"]),
    ("lost_daily_pattern", ["cpu_pct", "request_count", "temperature_c"]),
    ("variance_increase", ["latency_ms", "cpu_pct", "queue_depth"]),
]
NO_ANOMALY = ("no_anomaly", ["keystrokes", "latency_ms", "cpu_pct"])  # bursty counts, heavy-tailed latency, daily CPU
DAILY_PROB = {"cpu_pct": 0.7, "memory_pct": 0.0, "disk_io_mbps": 0.7, "request_count": 1.0,
              "latency_ms": 0.6, "temperature_c": 0.9, "queue_depth": 0.5, "keystrokes": 1.0}


def generate(kind: str, base_name: str, seed: int) -> dict:
    """One labelled series: {'kind', 'base', 'seed', 'step', 'daily', 'desc',
    'times', 'values', 'fmt', 'window': (first row, last row) or None,
    'anomaly_end': the time the anomaly itself stops, 'missing': rows dropped}.
    The window opens at the anomaly's first row (a streaming detector cannot
    know earlier) and closes 2 % of the rows after it ends (5 % after the
    onset for a level shift, which persists)."""
    rng = random.Random(seed)
    cls = BASES[base_name]
    step = rng.choice(cls.steps)
    daily = rng.random() < DAILY_PROB[base_name]
    if kind == "lost_daily_pattern" or (kind == "no_anomaly" and base_name == "cpu_pct"):
        daily = True
    spd = 86400 // step  # rows per day
    rph = 3600 // step
    n = rng.randint(5000, 10000)
    if kind == "lost_daily_pattern" and step == 60:
        n = rng.randint(8000, 10000)  # at least 3 days before the lost day
    base = cls(rng, step, daily, heavy=(kind == "no_anomaly" and base_name == "latency_ms"))

    # --- the anomaly, in grid rows (the grid is the regular time axis before rows go missing)
    win = None
    desc = ""
    onset = end = 0
    if kind == "level_shift":
        onset = int(rng.uniform(0.35, 0.7) * n)
        win = (onset, onset + int(0.05 * n))
        end = win[1]  # the new level persists
    elif kind == "memory_leak_ramp":
        ramp = int(rng.uniform(0.08, 0.15) * n)
        onset = int(rng.uniform(0.35, max(0.36, 0.85 - ramp / n)) * n)
        end = onset + ramp
        win = (onset, end + int(0.02 * n))
    elif kind == "stuck_sensor":
        dur = int(rng.uniform(3, 12) * rph)
        onset = int(rng.uniform(0.35, max(0.36, 0.85 - dur / n)) * n)
        end = onset + dur
        win = (onset, end + int(0.02 * n))
    elif kind == "spike_burst":
        dur = max(6, int(rng.uniform(0.5, 3) * rph))
        onset = int(rng.uniform(0.35, max(0.36, 0.85 - dur / n)) * n)
        end = onset + dur
        win = (onset, end + int(0.02 * n))
    elif kind == "lost_daily_pattern":
        first_day = max(3, math.ceil(0.35 * n / spd))
        last_day = max(first_day, int((0.85 * n - 2 * spd) / spd))
        onset = rng.randint(first_day, last_day) * spd + int(rng.uniform(0, 24) * rph)
        end = onset + spd
        win = (onset, end + int(0.02 * n))
    elif kind == "variance_increase":
        dur = int(rng.uniform(6, 24) * rph)
        onset = int(rng.uniform(0.35, max(0.36, 0.85 - dur / n)) * n)
        end = onset + dur
        win = (onset, end + int(0.02 * n))

    # --- missing rows: a few gaps of minutes and one or two of hours, away
    # from the window, and scattered single rows (never a window's end rows)
    gaps = [int(rng.uniform(2, 30) * 60 / step) for _ in range(rng.randint(2, 5))]
    gaps += [int(rng.uniform(1, 6) * rph) for _ in range(rng.randint(1, 2))]
    gaps = [g for g in gaps if g >= 1]
    n_single = int(n * rng.uniform(0.001, 0.005))
    grid = n + sum(gaps) + n_single
    missing = set()
    margin = 6 * rph
    for g in gaps:
        for _ in range(200):
            s = rng.randint(10, grid - g - 10)
            if win and not (s + g + margin < win[0] or s > win[1] + margin):
                continue
            if any(i in missing for i in range(s - 2, s + g + 2)):
                continue
            missing.update(range(s, s + g))
            break
    while len(missing) < grid - n:
        i = rng.randint(1, grid - 1)
        if win and i in (win[0], win[1]):
            continue
        missing.add(i)

    t0 = dt.datetime(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 300), hours=rng.choice([0, 0, 6, 13]))
    times = [t0 + dt.timedelta(seconds=i * step) for i in range(grid)]
    hours = [(t.hour + t.minute / 60.0 + t.second / 3600.0) + 24.0 * (t - t0).days for t in times]
    weekdays = [t.weekday() for t in times]

    if isinstance(base, Keystrokes):
        values = base.values(hours, weekdays)
    else:
        mean = base.mean(hours, weekdays)
        limit = None
        # anomalies on the expected level
        if kind == "level_shift":
            if base.mult:
                f = rng.uniform(1.5, 2.0) if rng.random() < 0.75 else rng.uniform(0.45, 0.65)
                mean[onset:] = [m * f for m in mean[onset:]]
                desc = f"level x{f:.2f} after the deploy"
            else:
                delta = rng.uniform(5, 8) * base.scale * (1 if rng.random() < 0.75 else -1)
                top = max(mean[onset:])
                if top + delta > 95 or min(mean[onset:]) + delta < 2:
                    delta = -delta
                mean[onset:] = [m + delta for m in mean[onset:]]
                desc = f"level {delta:+.1f} {base.unit} after the deploy"
        elif kind == "memory_leak_ramp":
            if base_name == "memory_pct":
                limit = rng.uniform(88, 97)
                start = mean[onset]
                for i in range(onset, grid):
                    frac = min(1.0, (i - onset) / (end - onset))
                    mean[i] = min(limit, mean[i] + frac * (limit - start))
                desc = f"leak {start:.0f}% -> {limit:.0f}% over {(end - onset) * step / 3600:.0f} h, then pinned"
            elif base_name == "queue_depth":
                limit = float(int(rng.uniform(200, 600)))
                for i in range(onset, grid):
                    frac = min(1.0, (i - onset) / (end - onset))
                    mean[i] = min(limit, mean[i] + frac * limit)
                desc = f"consumer leak: queue grows to its cap {limit:.0f} over {(end - onset) * step / 3600:.0f} h"
            else:
                f = rng.uniform(3, 5)
                for i in range(onset, grid):
                    frac = min(1.0, (i - onset) / (end - onset))
                    mean[i] *= 1 + frac * (f - 1)
                desc = f"GC pressure: latency grows x{f:.1f} over {(end - onset) * step / 3600:.0f} h"
        elif kind == "lost_daily_pattern":
            flat = statistics.fmean(mean[onset:end])
            mean[onset:end] = [flat] * (end - onset)
            desc = f"daily cycle gone for 24 h (held at {flat:.1f} {base.unit})"
        noise = base.noise(mean)
        if kind == "variance_increase":
            f = rng.uniform(3, 5)
            for i in range(onset, end):
                noise[i] *= f
            desc = f"spread x{f:.1f} for {(end - onset) * step / 3600:.0f} h, same mean"
        values = [base.post(m + e) for m, e in zip(mean, noise)]
        if limit is not None:
            for i in range(onset, grid):
                values[i] = min(values[i], base.post(limit))
        # anomalies on the observed values
        if kind == "stuck_sensor":
            v = values[onset - 1]
            values[onset:end] = [v] * (end - onset)
            desc = f"frozen at {base.fmt(v)} for {(end - onset) * step / 3600:.1f} h"
        elif kind == "spike_burst":
            k = min(end - onset, rng.randint(6, 15))
            rows = sorted(rng.sample(range(onset, end), k))
            rows[0] = onset
            for i in rows:
                if base.mult:
                    values[i] = base.post(max(values[i], mean[i]) * rng.uniform(6, 15))
                else:
                    values[i] = base.post(mean[i] + rng.uniform(8, 15) * base.scale)
            desc = f"{k} spikes in {(end - onset) * step / 60:.0f} min"

    keep = [i for i in range(grid) if i not in missing][:n]
    row_of = {g: r for r, g in enumerate(keep)}
    window = None
    if win:
        window = (row_of[win[0]], row_of[win[1]])
    return {"kind": kind, "base": base_name, "seed": seed, "step": step, "daily": daily, "desc": desc,
            "times": [times[i] for i in keep], "values": [values[i] for i in keep], "fmt": base.fmt,
            "window": window, "anomaly_end": t0 + dt.timedelta(seconds=end * step) if win else None,
            "missing": grid - len(keep)}


def write_series(s: dict, path: str):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        f.write("timestamp,value\n")
        fmt = s["fmt"]
        for t, v in zip(s["times"], s["values"]):
            f.write(f"{t.strftime(TS_FMT)},{fmt(v)}\n")


def alarm_stats(scores: list[float], thr: float, window, probation: int) -> dict:
    n = len(scores)
    lo, hi = window if window else (n, -1)
    inside = [i for i in range(max(lo, 0), min(hi, n - 1) + 1)]
    hit = [i for i in inside if scores[i] >= thr]
    edges = [i for i in range(n)
             if scores[i] >= thr and (i == 0 or scores[i - 1] < thr) and not lo <= i <= hi]
    outside = n - len(inside)
    outside_after = sum(1 for i in range(probation, n) if not lo <= i <= hi)
    return {"caught": bool(hit) if window else None, "first_hit_row": hit[0] if hit else None,
            "false_alarms": len(edges), "outside_points": outside,
            "false_alarms_after_probation": sum(1 for i in edges if i >= probation),
            "outside_points_after_probation": outside_after}


# --------------------------------------------------------------------------


def fmt_thr(x: float) -> str:
    return f"{x:.6g}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--steward", default=os.path.join(REPO, "target", "release", "steward"),
                    help="steward binary (default: target/release/steward of this checkout)")
    ap.add_argument("--seeds", type=int, default=3,
                    help="generated series per anomaly kind, and no-anomaly series (default 3)")
    ap.add_argument("--seed", type=int, default=1, help="first seed of the generator (default 1)")
    ap.add_argument("--keep", metavar="DIR", help="keep the generated files (and all detect outputs) in DIR")
    ap.add_argument("--json", nargs="?", const="-", metavar="FILE",
                    help="also a JSON report: to FILE, or with no FILE on stdout (the text report then goes to stderr)")
    ap.add_argument("--nab-dev", default=os.path.join(SHARED, "datasets", "nab-dev"), help="nab-dev directory")
    ap.add_argument("--nab-score", default=os.path.join(SHARED, "tools", "nab_score.py"), help="nab_score.py")
    ap.add_argument("--jobs", type=int, default=2, help="steward processes at once (default 2)")
    ap.add_argument("--subprocess-scoring", action="store_true", help="run nab_score.py as a program, not imported")
    args = ap.parse_args()

    out = sys.stderr if args.json == "-" else sys.stdout

    def say(*a):
        print(*a, file=out, flush=True)

    steward = os.path.abspath(args.steward)
    if not os.access(steward, os.X_OK):
        print(f"error: no steward binary at {steward} (build it: cargo build --release -p steward-cli)", file=sys.stderr)
        return 2
    for p in (args.nab_dev, args.nab_score):
        if not os.path.exists(p):
            print(f"error: {p} not found", file=sys.stderr)
            return 2
    if args.seeds < 1:
        print("error: --seeds must be at least 1", file=sys.stderr)
        return 2

    t_start = time.monotonic()
    mtime = dt.datetime.fromtimestamp(os.path.getmtime(steward), dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    report = {"steward": steward, "steward_mtime": mtime, "profile": PROFILE, "seeds": args.seeds,
              "first_seed": args.seed}
    say(f"steward: {steward} (built {mtime})")

    if args.keep:
        work = os.path.abspath(args.keep)
        os.makedirs(work, exist_ok=True)
    else:
        work = tempfile.mkdtemp(prefix="eval-detect-")

    try:
        return evaluate(args, steward, work, report, say, t_start)
    except StewardFailed as e:
        print(str(e), file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def evaluate(args, steward, work, report, say, t_start) -> int:
    # ---------------------------------------------------------------- 1. in-sample
    nab_data = os.path.join(args.nab_dev, "data")
    nab_windows_path = os.path.join(args.nab_dev, "windows.json")
    nab_windows = json.load(open(nab_windows_path))
    keys = sorted(k for k in nab_windows if k.split("/", 1)[0] in NAB_CATEGORIES)
    nab_results = os.path.join(work, "nab-dev-results")
    t0 = time.monotonic()
    stderr = run_detect_all(steward, [(f"nab-dev/{k}", os.path.join(nab_data, k), os.path.join(nab_results, k))
                                      for k in keys], args.jobs, work)
    t_detect = time.monotonic() - t0
    scorer = make_scorer(args, nab_windows_path, nab_data, nab_results)
    r = scorer.score(keys)
    thr_all = r["threshold"]
    report["in_sample"] = {k: r[k] for k in ("normalized", "threshold", "windows_detected", "windows_scorable",
                                            "fp", "tp", "raw")}
    report["in_sample"]["files"] = len(keys)
    report["in_sample"]["detect_seconds"] = round(t_detect, 2)
    report["in_sample"]["files_with_warnings"] = warned(stderr)
    say("")
    say(f"== 1. In-sample: nab-dev, {len(keys)} files, {PROFILE} profile, threshold optimized on all of it")
    say(f"score {r['normalized']:.2f}   threshold {fmt_thr(thr_all)}   windows {r['windows_detected']}/"
        f"{r['windows_scorable']}   false positives {r['fp']} rows   (detect: {t_detect:.1f} s)")
    if report["in_sample"]["files_with_warnings"]:
        say(f"steward warned on: {', '.join(report['in_sample']['files_with_warnings'])}")

    # ---------------------------------------------------------------- 2. leave-one-category-out
    by_cat = {c: [k for k in keys if k.startswith(c + "/")] for c in NAB_CATEGORIES}
    folds = []
    for held in NAB_CATEGORIES:
        if held == NO_WINDOW_CATEGORY or not any(nab_windows[k] for k in by_cat[held]):
            continue
        train = [k for c in NAB_CATEGORIES if c != held for k in by_cat[c]]
        tr = scorer.score(train)
        thr = tr["threshold"]
        ho = scorer.score(by_cat[held], thr)
        na = scorer.score(by_cat[NO_WINDOW_CATEGORY], thr)
        folds.append({"held_out": held, "threshold": thr, "train_score": tr["normalized"],
                      "score": ho["normalized"], "windows_detected": ho["windows_detected"],
                      "windows_scorable": ho["windows_scorable"], "fp": ho["fp"], "no_anomaly_fp": na["fp"]})
    say("")
    say(f"== 2. Leave-one-category-out, {PROFILE} profile: threshold optimized on the other three "
        f"categories ({NO_WINDOW_CATEGORY} always among them), frozen, held-out category scored alone")
    say(f"{'held-out fold':24s} {'threshold':>10s} {'train':>7s} {'score':>7s} {'windows':>8s} {'FP rows':>8s}")
    for f in folds:
        say(f"{f['held_out']:24s} {fmt_thr(f['threshold']):>10s} {f['train_score']:7.2f} {f['score']:7.2f} "
            f"{f['windows_detected']:>4d}/{f['windows_scorable']:<3d} {f['fp']:8d}")
    scores = [f["score"] for f in folds]
    loco_mean = statistics.fmean(scores) if scores else float("nan")
    loco_min = min(scores) if scores else float("nan")
    say(f"{'mean of folds':24s} {'':>10s} {'':>7s} {loco_mean:7.2f}")
    say(f"{'minimum fold':24s} {'':>10s} {'':>7s} {loco_min:7.2f}")
    say(f"{NO_WINDOW_CATEGORY} false positives at each fold's threshold: " +
        ", ".join(f"{f['held_out']} ({fmt_thr(f['threshold'])}): {f['no_anomaly_fp']}" for f in folds))
    say("(train = the training side's own score at its optimum; FP rows = rows at or above the threshold "
        "outside windows after NAB's probation, as nab_score.py counts them)")
    report["loco"] = {"folds": folds, "mean": loco_mean, "min": loco_min}

    # ---------------------------------------------------------------- 3. generator
    gen_dir = os.path.join(work, "generated")
    data_dir = os.path.join(gen_dir, "data")
    res_dir = os.path.join(gen_dir, "results")
    series = []
    for ki, (kind, bases) in enumerate(KINDS + [NO_ANOMALY]):
        for j in range(args.seeds):
            seed = args.seed * 1000 + ki * 100 + j
            s = generate(kind, bases[j % len(bases)], seed)
            s["key"] = f"{kind}/{s['base']}_s{seed}.csv"
            series.append(s)
    windows = {}
    for s in series:
        write_series(s, os.path.join(data_dir, s["key"]))
        w = s["window"]
        windows[s["key"]] = [[s["times"][w[0]].strftime(WIN_FMT), s["times"][w[1]].strftime(WIN_FMT)]] if w else []
    gen_windows_path = os.path.join(gen_dir, "windows.json")
    with open(gen_windows_path, "w") as f:
        json.dump(windows, f, indent=4)
    t0 = time.monotonic()
    stderr = run_detect_all(steward, [(f"generated/{s['key']}", os.path.join(data_dir, s["key"]),
                                       os.path.join(res_dir, s["key"])) for s in series], args.jobs, work)
    t_gen = time.monotonic() - t0

    per_series = []
    for s in series:
        sc = read_scores(os.path.join(res_dir, s["key"]))
        if len(sc) != len(s["values"]):
            raise StewardFailed(f"steward detect failed on generated/{s['key']}: "
                                f"{len(sc)} output rows for {len(s['values'])} input rows")
        n = len(sc)
        st = alarm_stats(sc, thr_all, s["window"], int(min(math.floor(0.15 * n), 750)))
        delay, late = None, False
        if st["first_hit_row"] is not None:
            delay = (s["times"][st["first_hit_row"]] - s["times"][s["window"][0]]).total_seconds() / 60.0
            late = s["times"][st["first_hit_row"]] >= s["anomaly_end"]
        per_series.append({"key": s["key"], "kind": s["kind"], "base": s["base"], "seed": s["seed"],
                           "rows": n, "step_s": s["step"], "daily": s["daily"], "missing_rows": s["missing"],
                           "anomaly": s["desc"], "window_rows": (s["window"][1] - s["window"][0] + 1) if s["window"] else 0,
                           "delay_min": delay, "first_alarm_after_anomaly_end": late, "max_score": max(sc),
                           "warned": "warning" in stderr[f"generated/{s['key']}"].lower(), **st})
    kinds = [k for k, _ in KINDS] + [NO_ANOMALY[0]]
    rows = []
    for kind in kinds:
        ps = [p for p in per_series if p["kind"] == kind]
        fa = sum(p["false_alarms"] for p in ps)
        pts = sum(p["outside_points"] for p in ps)
        fa2 = sum(p["false_alarms_after_probation"] for p in ps)
        pts2 = sum(p["outside_points_after_probation"] for p in ps)
        delays = [p["delay_min"] for p in ps if p["delay_min"] is not None]
        rows.append({"kind": kind, "series": len(ps),
                     "caught": sum(1 for p in ps if p["caught"]) if kind != NO_ANOMALY[0] else None,
                     "false_alarms": fa, "outside_points": pts,
                     "fa_per_1k": 1000.0 * fa / pts if pts else 0.0,
                     "fa_per_1k_worst_series": max(1000.0 * p["false_alarms"] / p["outside_points"] for p in ps),
                     "fa_per_1k_after_probation": 1000.0 * fa2 / pts2 if pts2 else 0.0,
                     "median_delay_min": statistics.median(delays) if delays else None})
    gen_scorer = make_scorer(args, gen_windows_path, data_dir, res_dir)
    gen_nab = gen_scorer.score([s["key"] for s in series], thr_all)

    say("")
    say(f"== 3. Generator sanity check: {len(series)} series (seeds {args.seed * 1000}+), "
        f"alarms at the frozen in-sample threshold {fmt_thr(thr_all)}   (detect: {t_gen:.1f} s)")
    say("per series:")
    say(f"  {'file':44s} {'rows':>6s} {'step':>4s} {'win':>5s} {'caught':>6s} {'delay':>9s} {'FA':>4s} "
        f"{'max':>5s}  anomaly")
    for p in per_series:
        caught = "-" if p["caught"] is None else ("yes" if p["caught"] else "NO")
        delay = "" if p["delay_min"] is None else f"{p['delay_min']:.0f} min" + ("*" if p["first_alarm_after_anomaly_end"] else " ")
        say(f"  {p['key']:44s} {p['rows']:6d} {p['step_s'] // 60:3d}m {p['window_rows']:5d} {caught:>6s} "
            f"{delay:>9s} {p['false_alarms']:4d} {p['max_score']:5.2f}  {p['anomaly']}")
    say("  (win = window rows; delay = onset to first alarm, * when that alarm came only after the anomaly had "
        "ended, in the window's tail; FA = false alarms; max = highest score)")
    say("per kind:")
    say(f"  {'kind':22s} {'caught':>7s} {'FA':>4s} {'FA/1k pts':>9s} {'worst':>6s} {'after warm-up':>13s} "
        f"{'median delay':>12s}")
    for r in rows:
        caught = "-" if r["caught"] is None else f"{r['caught']}/{r['series']}"
        delay = "" if r["median_delay_min"] is None else f"{r['median_delay_min']:.0f} min"
        say(f"  {r['kind']:22s} {caught:>7s} {r['false_alarms']:4d} {r['fa_per_1k']:9.2f} "
            f"{r['fa_per_1k_worst_series']:6.2f} {r['fa_per_1k_after_probation']:13.2f} {delay:>12s}")
    say("  (FA = alarms, i.e. rising edges, outside windows, over all rows; FA/1k pts = per 1,000 rows outside "
        "windows, pooled over the kind's series; worst = the worst single series; after warm-up = without "
        "NAB's probation rows)")
    say(f"  NAB {PROFILE} score of the generated set at that threshold (information only): "
        f"{gen_nab['normalized']:.2f} ({gen_nab['windows_detected']}/{gen_nab['windows_scorable']} windows, "
        f"{gen_nab['fp']} FP rows)")
    gen_ok = all(r["caught"] == r["series"] for r in rows if r["caught"] is not None) and \
        all(r["fa_per_1k"] <= FA_PER_1K_MAX for r in rows)
    missed = [f"{r['kind']} ({r['caught']}/{r['series']})" for r in rows
              if r["caught"] is not None and r["caught"] < r["series"]]
    noisy = [f"{r['kind']} ({r['fa_per_1k']:.2f})" for r in rows if r["fa_per_1k"] > FA_PER_1K_MAX]
    verdict = "YES" if gen_ok else "NO"
    why = "" if gen_ok else " (" + "; ".join(x for x in (
        "missed: " + ", ".join(missed) if missed else "",
        "over 1 false alarm per 1,000 points: " + ", ".join(noisy) if noisy else "") if x) + ")"
    say(f"Every kind caught in all its series with at most {FA_PER_1K_MAX:g} false alarm per 1,000 points: {verdict}{why}")
    report["generator"] = {"threshold": thr_all, "detect_seconds": round(t_gen, 2), "kinds": rows,
                           "series": per_series, "nab_score_info": {k: gen_nab[k] for k in (
                               "normalized", "windows_detected", "windows_scorable", "fp")},
                           "accepted": gen_ok}
    if args.keep:
        say(f"generated files: {data_dir} (windows: {gen_windows_path}; detect outputs: {res_dir}, {nab_results})")

    # ---------------------------------------------------------------- summary
    loco_ok = loco_mean >= LOCO_MEAN_MIN and loco_min >= LOCO_FOLD_MIN
    ins_ok = report["in_sample"]["normalized"] >= IN_SAMPLE_MIN
    elapsed = time.monotonic() - t_start
    say("")
    say("== Issue 14 acceptance")
    say(f"leave-one-category-out mean {loco_mean:.2f} (>= {LOCO_MEAN_MIN:g}), minimum fold {loco_min:.2f} "
        f"(>= {LOCO_FOLD_MIN:g}): {'yes' if loco_ok else 'no'}")
    say(f"in-sample {report['in_sample']['normalized']:.2f} (>= {IN_SAMPLE_MIN:g}): {'yes' if ins_ok else 'no'}")
    say(f"generator, every kind caught, <= {FA_PER_1K_MAX:g} false alarm / 1,000 points: {'yes' if gen_ok else 'no'}")
    say(f"elapsed {elapsed:.1f} s")
    report["acceptance"] = {"loco": loco_ok, "in_sample": ins_ok, "generator": gen_ok}
    report["elapsed_seconds"] = round(elapsed, 2)

    if args.json:
        text = json.dumps(report, indent=2, default=str)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
