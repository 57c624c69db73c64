"""The portal's throughput chart: valid SVG, points and SLS steps placed inside the plot, safe under a strict CSP."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.domain.errors import InvalidValue
from controller.northbound.web.chart import (BOTTOM, GOLD, LEFT, RIGHT, TOP, Point, Step, format_rate,
                                             nice_maximum, throughput_chart, time_ticks)

NS = {"svg": "http://www.w3.org/2000/svg"}
START = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
END = START + timedelta(hours=6)


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def find(root: ET.Element, tag: str, css_class: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{{{NS['svg']}}}{tag}") if css_class in (e.get("class") or "").split()]


def level_y(path: ET.Element) -> float:
    """The horizontal level of a step path "M x y [V y'] H x'": the y just before H."""
    tokens = (path.get("d") or "").split()
    return float(tokens[tokens.index("H") - 1])


def path_x_span(path: ET.Element) -> tuple[float, float]:
    tokens = (path.get("d") or "").split()
    return float(tokens[1]), float(tokens[-1])


def y_axis_top_label(root: ET.Element) -> str:
    axis = next(g for g in root.iter(f"{{{NS['svg']}}}g") if g.get("class") == "axis axis-y")
    return [t.text or "" for t in axis.iter(f"{{{NS['svg']}}}text")][-1]


def test_output_is_one_svg_element_with_title_and_desc() -> None:
    root = parse(throughput_chart({"gold": [Point(at(10), 1_200_000)]}, [Step(START, "gold", 2_000_000)],
                                  START, END))
    assert root.tag == f"{{{NS['svg']}}}svg"
    assert root.get("viewBox") == "0 0 720 260"
    assert root.get("role") == "img"
    title, desc = root.find("svg:title", NS), root.find("svg:desc", NS)
    assert title is not None and title.text == "Throughput against the SLS"
    assert desc is not None and desc.text == "gold: 1 measurement, latest 1.2 Mbit/s; SLS gold 2 Mbit/s"
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"


def test_one_polyline_per_class_and_one_circle_per_point_in_range() -> None:
    measured = {"gold": [Point(at(10), 1e6), Point(at(70), 2e6), Point(at(-5), 3e6)],   # the last is before start
                "silver": [Point(at(30), 5e5), Point(END + timedelta(seconds=1), 5e5)],
                "bronze": [Point(at(400), 1e5)]}                                     # after end: no bronze line
    root = parse(throughput_chart(measured, [], START, END))
    assert len(find(root, "polyline", "measured")) == 2
    assert len(find(root, "polyline", "measured-gold")) == 1
    assert len(find(root, "polyline", "measured-bronze")) == 0
    assert len(find(root, "circle", "point-gold")) == 2
    assert len(find(root, "circle", "point-silver")) == 1
    hover = find(root, "circle", "point-gold")[0].find("svg:title", NS)
    assert hover is not None and hover.text == "2024-05-01 12:10 UTC: 1 Mbit/s"


def test_agreed_steps_are_clipped_to_the_period_and_dashed() -> None:
    agreed = [Step(START - timedelta(days=2), "bronze", 500_000),   # superseded before start: not drawn
              Step(START - timedelta(hours=1), "silver", 1_000_000),   # in effect at start: clipped to start
              Step(at(120), "gold", 2_000_000),
              Step(END + timedelta(hours=1), "gold", 9_000_000)]   # after end: ignored
    root = parse(throughput_chart({}, agreed, START, END))
    paths = find(root, "path", "agreed")
    assert [p.get("class") for p in paths] == ["agreed agreed-silver", "agreed agreed-gold"]
    assert all(p.get("stroke-dasharray") for p in paths)
    silver, gold = paths
    assert path_x_span(silver)[0] == LEFT
    assert path_x_span(gold)[1] == 720 - RIGHT
    assert path_x_span(silver)[1] == path_x_span(gold)[0]
    assert level_y(gold) < level_y(silver)   # 2 Mbit/s is drawn higher than 1 Mbit/s
    assert y_axis_top_label(root) == "5 M"   # 2.2 M rounded up to a nice 5 M, not 9 M from the ignored step


def test_the_largest_measurement_lies_inside_the_plot_below_the_axis_maximum() -> None:
    root = parse(throughput_chart({"gold": [Point(at(10), 1e6), Point(at(20), 3.7e6)]},
                                  [Step(START, "gold", 2_000_000)], START, END))
    tallest = min(float(c.get("cy") or 0) for c in find(root, "circle", "point-gold"))
    assert TOP <= tallest <= 260 - BOTTOM
    assert tallest > TOP   # the axis has head room: its maximum is above the largest value
    assert y_axis_top_label(root) == "5 M"


def test_nice_maximum_is_one_two_or_five_times_a_power_of_ten_above_the_peak() -> None:
    assert nice_maximum(0) == (1e6, 5)
    assert nice_maximum(2e6)[0] == 5e6
    assert nice_maximum(1.7e6)[0] == 2e6
    assert nice_maximum(800) == (1000, 5)


@pytest.mark.parametrize(("bps", "label"), [(0, "0"), (500_000, "500 k"), (2_000_000, "2 M"),
                                            (1_500_000_000, "1.5 G"), (1_250_000, "1.25 M"), (999_999, "1 M"),
                                            (750, "750")])
def test_rate_labels_use_k_m_g_suffixes(bps: float, label: str) -> None:
    assert format_rate(bps) == label


def x_labels(root: ET.Element) -> list[str]:
    axis = next(g for g in root.iter(f"{{{NS['svg']}}}g") if g.get("class") == "axis axis-x")
    return [t.text or "" for t in axis.iter(f"{{{NS['svg']}}}text")]


@pytest.mark.parametrize("span", [timedelta(minutes=3), timedelta(minutes=17), timedelta(hours=6),
                                  timedelta(hours=36), timedelta(days=4), timedelta(days=9), timedelta(days=365)])
def test_time_ticks_are_four_to_six_within_the_period(span: timedelta) -> None:
    ticks = time_ticks(START, START + span)
    assert 4 <= len(ticks) <= 6
    assert all(START <= t <= START + span for t in ticks)


def test_x_labels_are_times_up_to_36_hours_and_dates_beyond() -> None:
    assert x_labels(parse(throughput_chart({}, [], START, END))) == ["12:00", "14:00", "16:00", "18:00"]
    long = x_labels(parse(throughput_chart({}, [], START, START + timedelta(days=9))))
    assert 4 <= len(long) <= 6 and all(re.fullmatch(r"\d\d-\d\d", label) for label in long)


def test_a_date_label_sits_at_midnight_so_two_days_show_only_the_midnights_they_span() -> None:
    ticks = time_ticks(START, START + timedelta(hours=40))
    assert [t.strftime("%m-%d %H:%M") for t in ticks] == ["05-02 00:00", "05-03 00:00"]


def test_no_measurements_says_so_but_still_draws_axes_and_the_sls() -> None:
    svg = throughput_chart({"gold": [Point(at(-30), 1e6)]}, [Step(START, "gold", 2_000_000)], START, END)
    root = parse(svg)
    empty = find(root, "text", "empty")
    assert len(empty) == 1 and empty[0].text == "no measurements in this period"
    assert len(find(root, "path", "agreed-gold")) == 1
    assert y_axis_top_label(root) == "5 M"
    assert "style=" not in svg and "<script" not in svg.lower()


def test_a_chart_with_data_has_no_empty_notice_no_style_attribute_and_a_legend() -> None:
    svg = throughput_chart({"gold": [Point(at(10), 1e6)]}, [Step(START, "silver", 2_000_000)], START, END)
    root = parse(svg)
    assert find(root, "text", "empty") == []
    assert all("style" not in e.attrib for e in root.iter())
    assert find(root, "polyline", "measured-gold")[0].get("stroke") == GOLD
    legend = next(g for g in root.iter(f"{{{NS['svg']}}}g") if g.get("class") == "legend")
    assert [t.text for t in legend.iter(f"{{{NS['svg']}}}text")] == ["Gold measured", "Silver agreed (SLS)"]


def test_a_hostile_title_is_escaped() -> None:
    svg = throughput_chart({}, [], START, END, title='<script>alert("x")</script> & co')
    assert "<script" not in svg
    title = parse(svg).find("svg:title", NS)
    assert title is not None and title.text == '<script>alert("x")</script> & co'


def test_output_is_deterministic() -> None:
    args = ({"silver": [Point(at(5), 3e5), Point(at(1), 2e5)]}, [Step(START, "silver", 1_000_000)], START, END)
    assert throughput_chart(*args) == throughput_chart(*args)


def test_unknown_class_and_reversed_period_are_refused() -> None:
    with pytest.raises(InvalidValue):
        throughput_chart({"platinum": [Point(at(1), 1e6)]}, [], START, END)
    with pytest.raises(InvalidValue):
        throughput_chart({}, [Step(START, "gold\" onload=\"x", 1)], START, END)
    with pytest.raises(InvalidValue):
        throughput_chart({}, [], END, START)


@settings(max_examples=150, deadline=None)
@given(points=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1e12, allow_nan=False)), min_size=1, max_size=30),
       agreed_bps=st.integers(0, 10**11), width=st.integers(200, 1200), height=st.integers(120, 600))
def test_every_point_is_drawn_inside_the_plot_area(points: list[tuple[float, float]], agreed_bps: int,
                                                   width: int, height: int) -> None:
    measured = {"bronze": [Point(START + (END - START) * share, bps) for share, bps in points]}
    root = parse(throughput_chart(measured, [Step(START, "gold", agreed_bps)], START, END, width=width, height=height))
    circles = find(root, "circle", "point-bronze")
    assert len(circles) == len(points)
    for circle in circles:
        assert LEFT <= float(circle.get("cx") or -1) <= width - RIGHT
        assert TOP <= float(circle.get("cy") or -1) <= height - BOTTOM
