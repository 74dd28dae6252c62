"""The answer format (answer.py): windows -> target text -> parsed, scored windows; temporal IoU."""

import math

import numpy as np
import pytest

from lavis.common.windows import pairwise_temporal_iou, temporal_iou
from lavis.models.blip2_mr.answer import TimeFormat, format_windows, parse_windows, windows_from_beams

FORMATS = ["seconds_integers", "seconds_floats", "relative_integers"]


@pytest.mark.parametrize(
    "text, upper, windows, invalid",
    [
        ("[[24, 30]]", 31.0, [(24, 30)], False),
        ("[[24, 30], [40.5, 52]]", 60, [(24, 30), (40.5, 52)], False),
        (" [ [1,2] , [3 , 4] ] ", 10, [(1, 2), (3, 4)], False),
        ("[[24, 30]", 31, [(24, 30)], True),  # missing bracket
        ("24, 30", 31, [(24, 30)], True),  # no brackets at all
        ("[[24, 30],]", 31, [(24, 30)], True),  # trailing comma
        ("[[30, 24]]", 31, [(24, 30)], True),  # swapped
        ("[[24, 40]]", 31, [(24, 31)], True),  # past the duration: clipped
        ("[[-2, 5]]", 31, [(0, 5)], True),  # negative start: clipped
        ("[[35, 40]]", 31, [], True),  # entirely past the end: dropped
        ("[[5, 5]]", 31, [], True),  # zero length
        ("[[1, 2], [3]]", 31, [(1, 2)], True),  # odd count: the unpaired number is dropped
        ("[]", 31, [], True),
        ("", 31, [], True),
        ("the person opens the door", 31, [], True),
        ("[[24, 30]]", None, [(24, 30)], False),  # no upper bound
    ],
)
def test_parse_windows(text, upper, windows, invalid):
    parsed = parse_windows(text, upper)
    assert parsed.windows == [tuple(map(float, w)) for w in windows]
    assert parsed.invalid is invalid


def test_parse_never_raises_on_non_text():
    assert parse_windows(None, 10).invalid  # type: ignore[arg-type]


def test_iou_hand_computed():
    assert temporal_iou([0, 10], [5, 15]) == pytest.approx(5 / 15)
    assert temporal_iou([0, 10], [10, 20]) == 0.0
    assert temporal_iou([2, 4, 0.9], [0, 10]) == pytest.approx(0.2)  # score ignored
    assert temporal_iou([3, 3], [3, 3]) == 0.0
    ious = pairwise_temporal_iou(np.array([[0, 10], [5, 15]]), np.array([[5, 15]]))
    assert ious[:, 0].tolist() == pytest.approx([5 / 15, 1.0])


def test_beams_merge_into_scored_windows_best_first():
    beams = [("[[10, 20]]", math.log(0.5)), ("[[10, 20.1], [40, 50]]", math.log(0.3)), ("[[40, 50]]", math.log(0.2))]
    out = windows_from_beams(beams, upper=60)
    # [10,20] gets 0.5 + 0.3 (IoU 0.99 merges), [40,50] gets 0.3 + 0.2.
    assert [w[:2] for w in out.windows] == [[10, 20], [40, 50]]
    assert [w[2] for w in out.windows] == pytest.approx([0.8, 0.5])
    assert out.invalid is False and out.texts[0] == "[[10, 20]]"


def test_beams_converted_to_seconds_and_capped():
    # relative_integers: percentages of a 50 s video.
    out = windows_from_beams([("[[10, 20]]", 0.0)], upper=100, to_seconds=lambda v: v / 100 * 50)
    assert out.windows == [[5.0, 10.0, 1.0]]
    many = " ".join(f"[{i}, {i + 0.5}]" for i in range(20))
    assert len(windows_from_beams([(many, 0.0)], upper=100).windows) == 10


def test_beams_all_garbage_is_invalid_and_empty():
    out = windows_from_beams([("no idea", -1.0), ("", -2.0)], upper=30)
    assert out.windows == [] and out.invalid


@pytest.mark.parametrize("name", FORMATS)
def test_time_formats_round_trip_through_the_parser(name):
    fmt, duration = TimeFormat(name), 47.3
    windows = [(30.2, 41.0), (3.26, 9.71)]
    text = format_windows(windows, duration, fmt)
    parsed = parse_windows(text, upper=fmt.upper(duration))
    assert not parsed.invalid
    seconds = [(fmt.to_seconds(s, duration), fmt.to_seconds(e, duration)) for s, e in parsed.windows]
    # Sorted by start, and back within the format's resolution.
    resolution = {"seconds_integers": 0.5, "seconds_floats": 0.05, "relative_integers": 0.5 * duration / 100}[name]
    for (s, e), (s0, e0) in zip(seconds, sorted(windows)):
        assert abs(s - s0) <= resolution + 1e-9 and abs(e - e0) <= resolution + 1e-9


def test_target_text_exact_forms():
    assert format_windows([(24.4, 30.5), (2, 5)], 60, TimeFormat("seconds_integers")) == "[[2, 5], [24, 31]]"
    assert format_windows([(2.25, 5.0)], 60, TimeFormat("seconds_floats")) == "[[2.3, 5.0]]"
    assert format_windows([(15, 30)], 60, TimeFormat("relative_integers")) == "[[25, 50]]"
    # Clipped to the video; a window shorter than one step still parses as a window.
    assert format_windows([(-3, 70)], 60, TimeFormat("seconds_integers")) == "[[0, 60]]"
    assert format_windows([(10.1, 10.3)], 60, TimeFormat("seconds_integers")) == "[[10, 11]]"
    assert format_windows([(59.9, 60)], 60, TimeFormat("seconds_integers")) == "[[59, 60]]"


def test_windows_from_beams_with_relative_format_returns_seconds():
    fmt, duration = TimeFormat("relative_integers"), 80.0
    scored = windows_from_beams(
        [("[[25, 50]]", -0.1), ("[[10, 20]]", -2.0)], fmt.upper(duration), lambda v: fmt.to_seconds(v, duration)
    )
    assert scored.windows[0][:2] == [20.0, 40.0] and scored.windows[0][2] > scored.windows[1][2]
