"""UnAV-100-style synthetic videos: event classes that recur and overlap.

Planned when any of ``SyntheticSpec.occurrences`` / ``overlap`` / ``class_queries`` is set
(``synthetic_plan.plan_video`` dispatches here). A video holds ``min_events``..``max_events``
event *classes* (a look, a sound, or both, unique within the video as in the default layout);
each class occurs ``occurrences`` times, its occurrences never touching one another. With
``overlap`` every class is placed on its own, so events of different classes overlap in time
(two sounds mix, a later shape covers an earlier one where they meet), as UnAV-100's do;
without it all occurrences of all classes share the timeline without touching. One query per
class with all its occurrences as windows; with ``class_queries`` its text is the class name
("high beep", "red square with low beep"), as the reference phrases UnAV-100 queries, and the
record carries it as ``label`` so detection mAP can score the data.
"""

from __future__ import annotations

import math

import numpy as np

from mr_data.synthetic_plan import (
    COLOURS,
    KINDS,
    MIN_GAP_S,
    SHAPES,
    SOUNDS,
    TEMPLATES,
    Event,
    SyntheticSpec,
    VideoPlan,
    place_events,
    video_id,
)


def class_name(kind: str, colour: str | None, shape: str | None, sound: str | None) -> str:
    """UnAV-100-style label of an event class: what is seen, heard, or both."""
    if kind == "visual":
        return f"{colour} {shape}"
    if kind == "audio":
        return str(sound)
    return f"{colour} {shape} with {sound}"


def _fit(rng: np.random.Generator, usable: int, lengths: list[int]) -> list[int]:
    """Start seconds for ``lengths`` placed in time order without touching (see place_events);
    lengths that do not fit are dropped from the end first."""
    while len(lengths) > 1 and sum(lengths) + MIN_GAP_S * (len(lengths) - 1) > usable:
        lengths.pop()
    return place_events(rng, usable, lengths)


def plan_multi_video(index: int, seed: int, spec: SyntheticSpec) -> VideoPlan:
    """The events of video ``index`` (a pure function of index, seed and spec), in time order."""
    rng = np.random.default_rng([seed, index, 0])
    num_frames = max(1, round(rng.uniform(spec.min_duration, spec.max_duration) * spec.fps))
    duration = num_frames / spec.fps
    usable = math.floor(duration + 1e-9)
    weights = np.asarray(spec.kind_weights, dtype=np.float64)
    looks = [(c, s) for c in COLOURS for s in SHAPES]
    look_order = [looks[i] for i in rng.permutation(len(looks))]
    sound_order = [SOUNDS[i] for i in rng.permutation(len(SOUNDS))]

    classes = []  # (kind, colour, shape, sound, query, label)
    for _ in range(int(rng.integers(spec.min_events, spec.max_events + 1))):
        kind = KINDS[int(rng.choice(len(KINDS), p=weights / weights.sum()))]
        if kind != "visual" and not sound_order:
            kind = "visual"  # every sound is already used in this video
        colour, shape = look_order.pop() if kind != "audio" else (None, None)
        sound = sound_order.pop() if kind != "visual" else None
        label = class_name(kind, colour, shape, sound)
        template = TEMPLATES[kind][int(rng.integers(len(TEMPLATES[kind])))]
        query = label if spec.class_queries else template.format(colour=colour, shape=shape, sound=sound)
        classes.append((kind, colour, shape, sound, query, label if spec.class_queries else None))

    counts = [int(rng.integers(spec.occurrences[0], spec.occurrences[1] + 1)) for _ in classes]
    occurrences: list[tuple[int, int, int]] = []  # (start, length, class index)
    if spec.overlap:
        for c, count in enumerate(counts):
            lengths = [int(x) for x in rng.integers(spec.min_event_len, spec.max_event_len + 1, size=count)]
            occurrences += [(start, length, c) for start, length in zip(_fit(rng, usable, lengths), lengths)]
    else:
        owners = [int(c) for c in rng.permutation(np.repeat(np.arange(len(classes)), counts))]
        lengths = [int(x) for x in rng.integers(spec.min_event_len, spec.max_event_len + 1, size=len(owners))]
        starts = _fit(rng, usable, lengths)
        occurrences += [(start, length, c) for start, length, c in zip(starts, lengths, owners)]

    events = []
    for start, length, c in sorted(occurrences):
        kind, colour, shape, sound, query, label = classes[c]
        size, centre, loudness = 0.0, (0.5, 0.5), 0.0
        if shape is not None:
            size = float(rng.uniform(*spec.shape_size))
            centre = (float(rng.uniform(size / 2, 1 - size / 2)), float(rng.uniform(size / 2, 1 - size / 2)))
        if sound is not None:
            loudness = float(rng.uniform(0.35, 0.6))
        events.append(Event(kind, start, start + length, query, colour, shape, centre, size, sound, loudness, label))
    return VideoPlan(video_id(index), index, num_frames, duration, tuple(events))
