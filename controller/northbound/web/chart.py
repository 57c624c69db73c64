"""The portal's throughput chart: measured per-class throughput against the agreed SLS, as inline SVG.

Rendered on the server so the page works without JavaScript; the portal's Content-Security-Policy
forbids inline scripts and `style` attributes, so every colour and dash is an SVG presentation attribute.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from xml.sax.saxutils import escape

from controller.domain.errors import InvalidValue

GOLD = "#b8860b"
SILVER = "#708090"
BRONZE = "#a0522d"
CLASS_COLOURS: dict[str, str] = {"gold": GOLD, "silver": SILVER, "bronze": BRONZE}

# Plot-area margins, in user units: room for the y labels on the left, x labels and legend below.
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 64
_GRID = "#e0e0e0"
_AXIS = "#333333"
_DASH = "6 4"
_DAY_S = 86_400
# Candidate x tick spacings, aligned to UTC multiples so labels land on round times.
_TICK_STEPS_S = (60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 14400, 21600, 28800, 43200,
                 *(d * _DAY_S for d in (1, 2, 3, 5, 7, 14, 28, 56, 91, 182, 364, 728, 1820, 3640)))


@dataclass(frozen=True)
class Point:
    at: datetime          # timezone-aware UTC
    bps: float            # measured average throughput over the bucket at `at`


@dataclass(frozen=True)
class Step:
    start: datetime       # the SLS in effect from this instant (until the next Step or the chart end)
    service_class: str    # "gold" | "silver" | "bronze"
    bandwidth_bps: int


@dataclass(frozen=True)
class _Frame:
    """Maps time and rate onto the plot area."""
    start: datetime
    end: datetime
    width: int
    height: int
    y_max: float

    def x(self, at: datetime) -> float:
        share = (at - self.start) / (self.end - self.start)
        return LEFT + share * (self.width - LEFT - RIGHT)

    def y(self, bps: float) -> float:
        share = min(max(bps, 0.0), self.y_max) / self.y_max   # clamped: nothing drawn outside the plot
        return self.height - BOTTOM - share * (self.height - TOP - BOTTOM)


def _n(v: float) -> str:
    return f"{v:.1f}"


def _scaled(bps: float) -> tuple[str, str]:
    for unit, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if round(bps / unit, 2) >= 1:   # 999 999 reads "1 M", not "1000 k"
            return f"{bps / unit:.2f}".rstrip("0").rstrip("."), prefix
    return f"{bps:.2f}".rstrip("0").rstrip("."), ""


def format_rate(bps: float) -> str:
    """A y tick label: 500_000 -> "500 k", 2_000_000 -> "2 M", 0 -> "0"."""
    number, prefix = _scaled(bps)
    return f"{number} {prefix}" if prefix else number


def rate_text(bps: float) -> str:
    """A rate for people: 1_200_000 -> "1.2 Mbit/s"."""
    number, prefix = _scaled(bps)
    return f"{number} {prefix}bit/s"


def nice_maximum(peak: float) -> tuple[float, int]:
    """The y axis top (1, 2 or 5 x 10^n, at least peak x 1.1) and how many tick intervals divide it."""
    target = peak * 1.1
    if target <= 0:
        return 1e6, 5
    power = 10.0 ** math.floor(math.log10(target))
    for mantissa, intervals in ((1, 5), (2, 4), (5, 5), (10, 5)):
        if mantissa * power >= target:
            return mantissa * power, intervals
    raise AssertionError("unreachable: 10 x 10^floor(log10(v)) >= v")


def time_ticks(start: datetime, end: datetime) -> list[datetime]:
    """Tick instants on round UTC times, at most 6; at least 4 up to 36 h, beyond that midnights only."""
    daily = end - start > timedelta(hours=36)
    t0, t1 = start.timestamp(), end.timestamp()
    ticks: list[float] = []
    for step in (s for s in _TICK_STEPS_S if not daily or s >= _DAY_S):
        first = math.ceil(t0 / step) * step
        ticks = [first + k * step for k in range(int((t1 - first) // step) + 1)]
        if len(ticks) <= 6:
            break
    if len(ticks) < 4 and not daily:   # a span of a few minutes: five even ticks
        ticks = [t0 + k * (t1 - t0) / 4 for k in range(5)]
    # A "MM-DD" label must sit at a midnight, so 36-72 h shows only the 1-3 midnights it spans.
    return [datetime.fromtimestamp(t, timezone.utc) for t in ticks]


def _colour(service_class: str) -> str:
    if service_class not in CLASS_COLOURS:
        raise InvalidValue(f"unknown service class {service_class!r}; expected one of gold, silver, bronze",
                           field="service_class", bound=sorted(CLASS_COLOURS), value=service_class)
    return CLASS_COLOURS[service_class]


def _visible_steps(agreed: Sequence[Step], start: datetime, end: datetime) -> list[tuple[Step, datetime, datetime]]:
    """Each step with the span it is in effect inside [start, end]; steps wholly outside are left out."""
    for step in agreed:
        _colour(step.service_class)
    ordered = sorted(agreed, key=lambda s: s.start)
    spans = []
    for i, step in enumerate(ordered):
        until = min(ordered[i + 1].start, end) if i + 1 < len(ordered) else end
        since = max(step.start, start)
        if since < until:
            spans.append((step, since, until))
    return spans


def _in_range(measured: Mapping[str, Sequence[Point]], start: datetime, end: datetime) -> dict[str, list[Point]]:
    """Each class's finite points inside [start, end], oldest first, classes in gold-silver-bronze order."""
    for service_class in measured:
        _colour(service_class)
    kept = {}
    for service_class in (c for c in CLASS_COLOURS if c in measured):
        points = sorted((p for p in measured[service_class] if start <= p.at <= end and math.isfinite(p.bps)),
                        key=lambda p: p.at)
        if points:
            kept[service_class] = points
    return kept


def _axes(frame: _Frame, intervals: int) -> list[str]:
    right, bottom = frame.width - RIGHT, frame.height - BOTTOM
    out = ['<g class="axis axis-y" text-anchor="end">']
    for k in range(intervals + 1):
        bps = frame.y_max * k / intervals
        y = _n(frame.y(bps))
        out.append(f'<line x1="{LEFT}" y1="{y}" x2="{right}" y2="{y}" stroke="{_GRID}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y}" dy="4">{escape(format_rate(bps))}</text>')
    out += ['</g>', '<g class="axis axis-x" text-anchor="middle">',
            f'<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="{_AXIS}"/>']
    label_format = "%H:%M" if frame.end - frame.start <= timedelta(hours=36) else "%m-%d"
    for at in time_ticks(frame.start, frame.end):
        x = _n(frame.x(at))
        out.append(f'<line x1="{x}" y1="{bottom}" x2="{x}" y2="{bottom + 4}" stroke="{_AXIS}"/>')
        out.append(f'<text x="{x}" y="{bottom + 16}">{at:{label_format}}</text>')
    return out + ['</g>']


def _agreed(frame: _Frame, spans: list[tuple[Step, datetime, datetime]]) -> list[str]:
    out, previous_y = [], None
    for step, since, until in spans:
        y = _n(frame.y(step.bandwidth_bps))
        riser = f"{previous_y} V {y}" if previous_y is not None else y   # vertical edge from the step before
        out.append(f'<path class="agreed agreed-{step.service_class}" d="M {_n(frame.x(since))} {riser} '
                   f'H {_n(frame.x(until))}" fill="none" stroke="{_colour(step.service_class)}" '
                   f'stroke-width="2" stroke-dasharray="{_DASH}"/>')
        previous_y = y
    return out


def _measured(frame: _Frame, service_class: str, points: list[Point]) -> list[str]:
    colour = _colour(service_class)
    coords = [(_n(frame.x(p.at)), _n(frame.y(p.bps))) for p in points]
    out = [f'<polyline class="measured measured-{service_class}" points="{" ".join(f"{x},{y}" for x, y in coords)}" '
           f'fill="none" stroke="{colour}" stroke-width="2"/>']
    for p, (x, y) in zip(points, coords):
        hover = f"{p.at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC: {rate_text(p.bps)}"
        out.append(f'<circle class="point point-{service_class}" cx="{x}" cy="{y}" r="3" fill="{colour}">'
                   f'<title>{escape(hover)}</title></circle>')
    return out


def _legend(frame: _Frame, measured: dict[str, list[Point]], agreed_classes: set[str]) -> list[str]:
    out = ['<g class="legend">']
    shown = [c for c in CLASS_COLOURS if c in measured or c in agreed_classes]
    column = (frame.width - LEFT - RIGHT) / 3   # one column per class, two rows: measured, agreed
    for i, service_class in enumerate(shown):
        x, colour, name = _n(LEFT + i * column), CLASS_COLOURS[service_class], service_class.capitalize()
        rows = ((service_class in measured, "measured", ""),
                (service_class in agreed_classes, "agreed (SLS)", f' stroke-dasharray="{_DASH}"'))
        for row, (present, label, dash) in enumerate(rows):
            if present:
                y = frame.height - 28 + row * 16
                out.append(f'<line x1="{x}" y1="{y - 4}" x2="{_n(float(x) + 20)}" y2="{y - 4}" stroke="{colour}" '
                           f'stroke-width="2"{dash}/>')
                out.append(f'<text x="{_n(float(x) + 26)}" y="{y}">{escape(f"{name} {label}")}</text>')
    return out + ['</g>']


def _summary(measured: dict[str, list[Point]], spans: list[tuple[Step, datetime, datetime]]) -> str:
    parts = [f"{c}: {len(ps)} measurement{'s' if len(ps) != 1 else ''}, latest {rate_text(ps[-1].bps)}"
             for c, ps in measured.items()] or ["no measurements in this period"]
    if spans:
        last = spans[-1][0]
        parts.append(f"SLS {last.service_class} {rate_text(last.bandwidth_bps)}")
    else:
        parts.append("no SLS in this period")
    return "; ".join(parts)


def throughput_chart(measured: Mapping[str, Sequence[Point]], agreed: Sequence[Step],
                     start: datetime, end: datetime, *, width: int = 720, height: int = 260,
                     title: str = "Throughput against the SLS") -> str:
    """One <svg> element: per-class measured throughput (lines and points) and the agreed SLS steps (dashed).

    Raises:
        InvalidValue: start/end naive or not increasing, the size leaves no plot area, or an unknown class.
    """
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise InvalidValue("the chart needs timezone-aware start < end", field="end", bound=start, value=end)
    if width <= LEFT + RIGHT or height <= TOP + BOTTOM:
        raise InvalidValue(f"the chart must be larger than {LEFT + RIGHT}x{TOP + BOTTOM}", field="width",
                           bound=(LEFT + RIGHT, TOP + BOTTOM), value=(width, height))
    points = _in_range(measured, start, end)
    spans = _visible_steps(agreed, start, end)
    peak = max([p.bps for ps in points.values() for p in ps] + [s.bandwidth_bps for s, _, _ in spans], default=0.0)
    y_max, intervals = nice_maximum(peak)
    frame = _Frame(start, end, width, height, y_max)
    # Ids derive from the input so output stays deterministic; start/end tell apart two charts on one page.
    ident = "chart-" + hashlib.sha256(f"{title}|{start.isoformat()}|{end.isoformat()}".encode()).hexdigest()[:10]
    body = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-labelledby="{ident}-title {ident}-desc" '
            f'font-family="sans-serif" font-size="11" fill="{_AXIS}">',
            f'<title id="{ident}-title">{escape(title)}</title>',
            f'<desc id="{ident}-desc">{escape(_summary(points, spans))}</desc>',
            *_axes(frame, intervals), *_agreed(frame, spans)]
    for service_class, class_points in points.items():
        body += _measured(frame, service_class, class_points)
    if not points:
        body.append(f'<text class="empty" x="{_n((LEFT + width - RIGHT) / 2)}" y="{_n((TOP + height - BOTTOM) / 2)}" '
                    f'text-anchor="middle">no measurements in this period</text>')
    body += _legend(frame, points, {s.service_class for s, _, _ in spans})
    return "\n".join(body + ["</svg>"])
