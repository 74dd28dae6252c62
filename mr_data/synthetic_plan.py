"""What each synthetic video contains: its duration, its events (when, what) and their queries.

Planning is separate from rendering so that annotations are a pure function of (seed, video
index, spec): the same seed gives byte-identical annotation files whatever the worker count.

Event design (see mr_data/README.md for the reasoning):
- ``visual``: a coloured shape (4 colours x 3 shapes) is on screen, silently;
- ``audio``: a sound (low beep, high beep, noise burst) is heard with nothing on screen, so a
  video-only model cannot localize it;
- ``audio_visual``: a shape appears together with a sound.
Within one video every colour-shape pair and every sound is used at most once, so each query
("when is the high beep heard?") names exactly one event and has exactly one window. Events are
short relative to the video (2-5 s in 20-30 s by default) and placed uniformly, so a guess from
the duration alone rarely overlaps them; they never overlap each other. (UnAV-100-style videos,
where a class recurs and events overlap, are planned by ``synthetic_multi``.)
Windows lie on whole seconds: the model writes integer seconds, and Mr. BLIP's Charades-STA
windows are whole seconds too, so a perfect model can hit the window exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from lavis.common.errors import InputError

KINDS = ("visual", "audio", "audio_visual")
COLOURS = {  # saturated RGB, far from the dull background colours
    "red": (225, 30, 30),
    "green": (30, 200, 50),
    "blue": (40, 80, 240),
    "yellow": (240, 215, 30),
}
SHAPES = ("square", "circle", "triangle")
SOUNDS = ("low beep", "high beep", "noise burst")
TEMPLATES = {
    "visual": ("when does the {colour} {shape} appear?", "when is the {colour} {shape} on screen?"),
    "audio": ("when is the {sound} heard?", "when can you hear the {sound}?"),
    "audio_visual": (
        "when does the {colour} {shape} appear with the {sound}?",
        "when is the {sound} heard while the {colour} {shape} is shown?",
    ),
}
MIN_GAP_S = 1  # seconds of background between two events, so their windows never touch


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that shapes the generated videos and annotations (saved in ``meta.json``)."""

    width: int = 64
    height: int = 64
    fps: float = 8.0
    sample_rate: int = 16000  # Hz of the AAC track; the loader resamples to its encoder's rate
    min_duration: float = 20.0  # seconds
    max_duration: float = 30.0
    min_event_len: int = 2  # whole seconds
    max_event_len: int = 5
    min_events: int = 2  # per video
    max_events: int = 4
    kind_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # visual, audio, audio_visual
    shape_size: tuple[float, float] = (0.55, 0.75)  # side/diameter range, fraction of min(W, H)
    # Range of the background's two gradient colours (0-255 levels, per video). Narrow, so that
    # videos differ less from each other than an event differs from the background: a tiny
    # encoder learnt from scratch otherwise mostly tells videos apart.
    background_levels: tuple[float, float] = (100.0, 125.0)
    visual_noise: float = 6.0  # std of per-frame pixel noise, in 0-255 levels
    audio_noise: float = 0.01  # std of the background hiss, amplitude in [-1, 1]
    tone_hz: tuple[float, float] = (440.0, 1760.0)  # low beep, high beep
    crf: int = 23
    gop: Optional[int] = None  # keyframe interval in frames (None: the encoder's default)
    val_fraction: float = 0.1  # of the videos
    test_fraction: float = 0.2
    # UnAV-100-style content (mr_data.synthetic_multi). At these defaults a video is planned as
    # above; otherwise min/max_events count event classes (one query each) per video.
    occurrences: tuple[int, int] = (1, 1)  # how often each event class occurs in a video
    overlap: bool = False  # events of different classes may overlap in time
    class_queries: bool = False  # the query is the class name ("high beep"), with record.label

    @property
    def multi(self) -> bool:
        """Whether videos are planned by ``synthetic_multi`` (any UnAV-style option set)."""
        return self.occurrences != (1, 1) or self.overlap or self.class_queries

    def validate(self) -> None:
        problems = []
        if self.width % 2 or self.height % 2 or self.width < 16 or self.height < 16:
            problems.append(f"width/height must be even and >= 16, got {self.width}x{self.height}")
        if self.fps <= 0 or self.sample_rate < 8000:
            problems.append(f"need fps > 0 and sample_rate >= 8000, got {self.fps}, {self.sample_rate}")
        if max(self.tone_hz) >= self.sample_rate / 2:
            problems.append(f"tones {self.tone_hz} Hz must lie below Nyquist ({self.sample_rate / 2} Hz)")
        if not 1 <= self.min_event_len <= self.max_event_len:
            problems.append(f"need 1 <= min_event_len <= max_event_len, got {self.min_event_len}, {self.max_event_len}")
        if not 1 <= self.min_events <= self.max_events:
            problems.append(f"need 1 <= min_events <= max_events, got {self.min_events}, {self.max_events}")
        if not self.max_event_len <= math.floor(self.min_duration) <= self.max_duration:
            problems.append(
                f"need max_event_len ({self.max_event_len}) <= min_duration ({self.min_duration}) "
                f"<= max_duration ({self.max_duration})"
            )
        if len(self.kind_weights) != 3 or min(self.kind_weights) < 0 or sum(self.kind_weights) <= 0:
            problems.append(f"kind_weights must be 3 non-negative numbers, not all 0: {self.kind_weights}")
        if not 0 < self.shape_size[0] <= self.shape_size[1] <= 1:
            problems.append(f"shape_size must satisfy 0 < low <= high <= 1, got {self.shape_size}")
        if not 0 <= self.background_levels[0] <= self.background_levels[1] <= 255:
            problems.append(f"background_levels must satisfy 0 <= low <= high <= 255, got {self.background_levels}")
        if len(self.occurrences) != 2 or not 1 <= self.occurrences[0] <= self.occurrences[1]:
            problems.append(f"occurrences must satisfy 1 <= low <= high, got {self.occurrences}")
        if self.multi and self.max_events > len(COLOURS) * len(SHAPES):
            problems.append(
                f"max_events (event classes) must be <= {len(COLOURS) * len(SHAPES)}, got {self.max_events}"
            )
        if problems:
            raise InputError("invalid synthetic spec: " + "; ".join(problems))


@dataclass(frozen=True)
class Event:
    kind: str  # one of KINDS
    start: int  # seconds, inclusive
    end: int  # seconds, exclusive
    query: str
    colour: Optional[str] = None  # visual part (None for audio events)
    shape: Optional[str] = None
    centre: tuple[float, float] = (0.5, 0.5)  # (x, y), fractions of the frame
    size: float = 0.0  # fraction of min(W, H)
    sound: Optional[str] = None  # audio part (None for visual events)
    loudness: float = 0.0  # peak amplitude in [-1, 1]
    label: Optional[str] = None  # the event's class name when queries are class names


@dataclass(frozen=True)
class VideoPlan:
    vid: str
    index: int
    num_frames: int
    duration: float  # num_frames / fps, seconds
    events: tuple[Event, ...]


def video_id(index: int) -> str:
    return f"syn{index:05d}"


def place_events(rng: np.random.Generator, usable: int, lengths: list[int]) -> list[int]:
    """Start seconds of events of ``lengths`` (in order), uniformly spread over ``usable`` s."""
    slack = usable - sum(lengths) - MIN_GAP_S * (len(lengths) - 1)
    offsets = np.sort(rng.integers(0, slack + 1, size=len(lengths)))  # stars and bars
    starts, cursor, previous = [], 0, 0
    for length, offset in zip(lengths, offsets):
        cursor += int(offset) - previous
        starts.append(cursor)
        cursor += length + MIN_GAP_S
        previous = int(offset)
    return starts


def plan_video(index: int, seed: int, spec: SyntheticSpec) -> VideoPlan:
    """The events of video ``index``: a pure function of (index, seed, spec)."""
    if spec.multi:
        # Imported here: synthetic_multi builds on this module's names.
        from mr_data.synthetic_multi import plan_multi_video

        return plan_multi_video(index, seed, spec)
    rng = np.random.default_rng([seed, index, 0])
    num_frames = max(1, round(rng.uniform(spec.min_duration, spec.max_duration) * spec.fps))
    duration = num_frames / spec.fps
    usable = math.floor(duration + 1e-9)  # events end on a whole second inside the video
    count = int(rng.integers(spec.min_events, spec.max_events + 1))
    lengths = [int(x) for x in rng.integers(spec.min_event_len, spec.max_event_len + 1, size=count)]
    while len(lengths) > 1 and sum(lengths) + MIN_GAP_S * (len(lengths) - 1) > usable:
        lengths.pop()  # a short video holds fewer events
    starts = place_events(rng, usable, lengths)

    weights = np.asarray(spec.kind_weights, dtype=np.float64)
    looks = [(c, s) for c in COLOURS for s in SHAPES]
    look_order = [looks[i] for i in rng.permutation(len(looks))]
    sound_order = [SOUNDS[i] for i in rng.permutation(len(SOUNDS))]
    events = []
    for start, length in zip(starts, lengths):
        kind = KINDS[int(rng.choice(len(KINDS), p=weights / weights.sum()))]
        if kind != "visual" and not sound_order:
            kind = "visual"  # every sound is already used in this video
        colour = shape = sound = None
        centre, size, loudness = (0.5, 0.5), 0.0, 0.0
        if kind != "audio":
            colour, shape = look_order.pop()
            size = float(rng.uniform(*spec.shape_size))
            centre = (float(rng.uniform(size / 2, 1 - size / 2)), float(rng.uniform(size / 2, 1 - size / 2)))
        if kind != "visual":
            sound = sound_order.pop()
            loudness = float(rng.uniform(0.35, 0.6))
        template = TEMPLATES[kind][int(rng.integers(len(TEMPLATES[kind])))]
        query = template.format(colour=colour, shape=shape, sound=sound)
        events.append(Event(kind, start, start + length, query, colour, shape, centre, size, sound, loudness))
    return VideoPlan(video_id(index), index, num_frames, duration, tuple(events))
