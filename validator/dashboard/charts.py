"""Charts of jobs over time, drawn on the server as SVG (no script, no CDN).

Two charts share one shape: the window is cut into equal buckets, the database counts job
events per bucket and per series (``GROUP BY floor((at - start) / bucket)``, so a busy day
costs one grouped query, not a row per event), and :class:`Chart` lays the counts out as
stacked bars, with an optional line, for ``dashboard/_chart.html``.

- **Jobs per status**: jobs that ended in each terminal status, stacked, and the jobs received
  as a line (what came in against what went out).
- **Jobs per miner**: job attempts each miner accepted; the busiest miners by name, the rest as
  "other miners".
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from django.db.models import Count, F, FloatField
from django.db.models.functions import Floor

from validator.dashboard.queries import TERMINAL
from validator.models import JobEvent

__all__ = ["WINDOWS", "Bar", "Chart", "Series", "jobs_per_miner", "jobs_per_status", "window"]

WINDOWS = {"15m": 900.0, "1h": 3600.0, "6h": 6 * 3600.0, "24h": 24 * 3600.0}
DEFAULT_WINDOW = "1h"
BUCKETS = 30
STATUS_COLORS = {
    "completed": "#2e7d32",
    "failed": "#c62828",
    "infra_failed": "#ef6c00",
    "rejected": "#6a1b9a",
    "cancelled": "#757575",
    "received": "#1565c0",
}
MINER_COLORS = ["#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#9e9d24", "#4e342e"]
OTHER_COLOR = "#9e9e9e"
TOP_MINERS = len(MINER_COLORS)


def window(name: str | None) -> tuple[str, float]:
    """The window asked for by name (``?window=6h``), or the default one."""
    return (name, WINDOWS[name]) if name in WINDOWS else (DEFAULT_WINDOW, WINDOWS[DEFAULT_WINDOW])


@dataclass
class Series:
    label: str
    color: str
    counts: list[int]
    key: str = ""  # a miner's hotkey, a status: what the label stands for

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass
class Chart:
    """Stacked bars (``series``) and an optional ``line`` over ``buckets`` buckets from ``start``."""

    title: str
    caption: str
    start: float
    bucket_s: float
    series: list[Series] = field(default_factory=list)
    line: Series | None = None
    width: int = 720
    height: int = 220
    left: int = 40  # room for the y axis labels
    bottom: int = 22  # room for the x axis labels
    top: int = 10

    def __repr__(self) -> str:
        return f"<Chart {self.title!r} {len(self.series)} series, {self.total} events>"

    @property
    def buckets(self) -> int:
        series = [*self.series, *([self.line] if self.line else [])]
        return len(series[0].counts) if series else 0

    @property
    def total(self) -> int:
        return sum(series.total for series in self.series) + (self.line.total if self.line else 0)

    @property
    def plot_height(self) -> int:
        return self.height - self.bottom - self.top

    @property
    def plot_width(self) -> int:
        return self.width - self.left - 8

    @property
    def peak(self) -> int:
        stacked = [sum(series.counts[i] for series in self.series) for i in range(self.buckets)]
        line = self.line.counts if self.line else []
        return max([1, *stacked, *line])

    @property
    def scale_max(self) -> int:
        """The top of the y axis: the peak rounded up to a readable number."""
        peak = self.peak
        magnitude = 10 ** max(0, len(str(peak)) - 1)
        for step in (1, 2, 5, 10):
            if peak <= step * magnitude:
                return step * magnitude
        return peak

    def _x(self, index: int) -> float:
        return self.left + index * self.plot_width / max(1, self.buckets)

    def _y(self, value: float) -> float:
        return self.top + self.plot_height * (1 - value / self.scale_max)

    def bars(self) -> list[Bar]:
        width = self.plot_width / max(1, self.buckets)
        bars = []
        for index in range(self.buckets):
            base = 0
            for series in self.series:
                count = series.counts[index]
                if not count:
                    continue
                top = self._y(base + count)
                bars.append(
                    Bar(
                        x=round(self._x(index) + 1, 1),
                        y=round(top, 1),
                        width=round(max(1.0, width - 2), 1),
                        height=round(self._y(base) - top, 1),
                        color=series.color,
                        title=f"{series.label}: {count} ({self.bucket_label(index)})",
                    )
                )
                base += count
        return bars

    def line_points(self) -> str:
        if self.line is None:
            return ""
        width = self.plot_width / max(1, self.buckets)
        return " ".join(
            f"{self._x(i) + width / 2:.1f},{self._y(count):.1f}" for i, count in enumerate(self.line.counts)
        )

    def y_ticks(self) -> list[tuple[float, int]]:
        top = self.scale_max
        return [(round(self._y(value), 1), value) for value in sorted({0, top // 2, top})]

    def x_ticks(self) -> list[tuple[float, str]]:
        every = max(1, self.buckets // 5)
        return [(round(self._x(i), 1), _clock(self.start + i * self.bucket_s)) for i in range(0, self.buckets, every)]

    def bucket_label(self, index: int) -> str:
        begin = self.start + index * self.bucket_s
        return f"{_clock(begin)}–{_clock(begin + self.bucket_s)} UTC"

    @property
    def baseline(self) -> float:
        return self._y(0)

    @property
    def right(self) -> float:
        return self.left + self.plot_width


def _clock(at: float) -> str:
    return time.strftime("%H:%M", time.gmtime(at))


def _frame(window_s: float, now: float | None, buckets: int) -> tuple[float, float]:
    """(start, bucket_s): buckets end at the first boundary after now, so they stay put between loads."""
    now = now if now is not None else time.time()
    bucket_s = window_s / buckets
    end = math.ceil(now / bucket_s) * bucket_s
    return end - buckets * bucket_s, bucket_s


def _counts(start: float, bucket_s: float, buckets: int, key: str, **filters) -> dict[str, list[int]]:
    """``{value of key: [count per bucket]}`` for the job events matching ``filters`` in the window."""
    rows = (
        JobEvent.objects.filter(at__gte=start, at__lt=start + buckets * bucket_s, **filters)
        .annotate(bucket=Floor((F("at") - start) / bucket_s, output_field=FloatField()))
        .order_by()
        .values_list(key, "bucket")
        .annotate(n=Count("id"))
    )
    counts: dict[str, list[int]] = {}
    for value, bucket, n in rows:
        index = min(buckets - 1, max(0, int(bucket)))
        counts.setdefault(value, [0] * buckets)[index] += n
    return counts


def jobs_per_status(window_s: float, now: float | None = None, buckets: int = BUCKETS) -> Chart:
    start, bucket_s = _frame(window_s, now, buckets)
    counts = _counts(start, bucket_s, buckets, "status", status__in=[*TERMINAL, "received"])
    empty = [0] * buckets
    return Chart(
        title="Jobs per status",
        caption="jobs ending in each status (bars) and jobs received (line), per bucket",
        start=start,
        bucket_s=bucket_s,
        series=[
            Series(status, STATUS_COLORS[status], counts.get(status, empty), key=status)
            for status in ("completed", "failed", "infra_failed", "rejected", "cancelled")
        ],
        line=Series("received", STATUS_COLORS["received"], counts.get("received", empty), key="received"),
    )


def jobs_per_miner(window_s: float, now: float | None = None, buckets: int = BUCKETS) -> Chart:
    start, bucket_s = _frame(window_s, now, buckets)
    counts = _counts(start, bucket_s, buckets, "miner_hotkey", status="accepted")
    ranked = sorted(counts.items(), key=lambda item: (-sum(item[1]), item[0]))
    series = [
        Series(hotkey[:12] + ("…" if len(hotkey) > 12 else ""), MINER_COLORS[rank], per_bucket, key=hotkey)
        for rank, (hotkey, per_bucket) in enumerate(ranked[:TOP_MINERS])
    ]
    if len(ranked) > TOP_MINERS:
        others = [sum(column) for column in zip(*(per_bucket for _, per_bucket in ranked[TOP_MINERS:]), strict=True)]
        series.append(Series(f"{len(ranked) - TOP_MINERS} other miners", OTHER_COLOR, others))
    if not series:
        series = [Series("no miner", OTHER_COLOR, [0] * buckets)]
    return Chart(
        title="Jobs per miner",
        caption="job attempts each miner accepted, per bucket",
        start=start,
        bucket_s=bucket_s,
        series=series,
    )
