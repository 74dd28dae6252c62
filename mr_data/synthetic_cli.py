"""The synthetic benchmark's command line: named presets and every ``SyntheticSpec`` field as a
flag (a preset sets the defaults, explicit flags override them).

Presets:
- ``demo`` (the default): the demo's benchmark, 20-30 s videos, one window per query;
- ``unav``: UnAV-100-style, event classes that recur (1-3 times) and overlap one another, the
  query being the class name (``synthetic_multi``), 20-40 s videos;
- ``long``: 2-23 minute videos (ActivityNet Captions reaches 12.5 min, TACoS 23) at 16 px,
  1 fps and 8 kHz audio, events of 5-120 s: cheap to make (~3 s per 20-minute video on two
  cores).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from lavis.common.cli import ArgumentParser, finite_float
from mr_data.synthetic_plan import SyntheticSpec

PRESETS: dict[str, SyntheticSpec] = {
    "demo": SyntheticSpec(),
    "unav": SyntheticSpec(
        min_duration=20.0,
        max_duration=40.0,
        max_event_len=6,
        min_events=1,
        max_events=3,
        occurrences=(1, 3),
        overlap=True,
        class_queries=True,
    ),
    "long": SyntheticSpec(
        width=16,
        height=16,
        fps=1.0,
        sample_rate=8000,
        min_duration=120.0,
        max_duration=1380.0,
        min_event_len=5,
        max_event_len=120,
        min_events=2,
        max_events=6,
    ),
}


def build_parser(description: Optional[str], d: SyntheticSpec) -> argparse.ArgumentParser:
    """The full parser, its spec flags defaulting to ``d``."""
    p = ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--preset", choices=sorted(PRESETS), default="demo", help="the defaults of the flags below")
    p.add_argument("--num-videos", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, help="square frames of SIZE px (sets --width and --height)")
    p.add_argument("--width", type=int, default=d.width)
    p.add_argument("--height", type=int, default=d.height)
    p.add_argument("--fps", type=finite_float, default=d.fps)
    p.add_argument("--sample-rate", type=int, default=d.sample_rate, help="Hz of the AAC track")
    p.add_argument("--duration", type=finite_float, help="every video lasts this long (sets min and max)")
    p.add_argument("--min-duration", type=finite_float, default=d.min_duration)
    p.add_argument("--max-duration", type=finite_float, default=d.max_duration)
    p.add_argument("--min-event-len", type=int, default=d.min_event_len, help="whole seconds")
    p.add_argument("--max-event-len", type=int, default=d.max_event_len)
    p.add_argument("--min-events", type=int, default=d.min_events, help="events (classes, see --occurrences) per video")
    p.add_argument("--max-events", type=int, default=d.max_events)
    p.add_argument(
        "--occurrences",
        type=int,
        nargs=2,
        default=d.occurrences,
        metavar=("LOW", "HIGH"),
        help="how often each event class occurs in a video: one query, several windows (UnAV-100 style)",
    )
    p.add_argument(
        "--overlap",
        action=argparse.BooleanOptionalAction,
        default=d.overlap,
        help="events of different classes may overlap in time",
    )
    p.add_argument(
        "--class-queries",
        action=argparse.BooleanOptionalAction,
        default=d.class_queries,
        help="the query is the class name ('high beep') and records carry it as 'label'",
    )
    p.add_argument(
        "--kind-weights",
        type=finite_float,
        nargs=3,
        default=d.kind_weights,
        metavar=("VISUAL", "AUDIO", "AUDIO_VISUAL"),
        help="relative frequency of each event kind",
    )
    p.add_argument(
        "--shape-size",
        type=finite_float,
        nargs=2,
        default=d.shape_size,
        metavar=("LOW", "HIGH"),
        help="side/diameter range of the shapes, as a fraction of the frame's shorter side",
    )
    p.add_argument(
        "--background-levels",
        type=finite_float,
        nargs=2,
        default=d.background_levels,
        metavar=("LOW", "HIGH"),
        help="range of the background colours (0-255)",
    )
    p.add_argument("--visual-noise", type=finite_float, default=d.visual_noise, help="pixel noise std (0-255)")
    p.add_argument("--audio-noise", type=finite_float, default=d.audio_noise, help="background hiss std")
    p.add_argument("--crf", type=int, default=d.crf, help="x264 quality (lower = bigger files)")
    p.add_argument("--gop", type=int, default=d.gop, help="keyframe interval in frames")
    p.add_argument("--val-fraction", type=finite_float, default=d.val_fraction, help="share of videos")
    p.add_argument("--test-fraction", type=finite_float, default=d.test_fraction, help="share of videos")
    p.add_argument("--workers", type=int, help="encoding processes (default: CPU count)")
    p.add_argument("--overwrite", action="store_true", help="regenerate even if OUT is complete")
    return p


def parse_arguments(argv: Optional[list[str]], description: Optional[str]) -> tuple[argparse.Namespace, SyntheticSpec]:
    """The parsed arguments and the spec they give (the preset's, with the flags applied)."""
    first = ArgumentParser(add_help=False)
    first.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    preset = first.parse_known_args(argv)[0].preset
    args = build_parser(description, PRESETS[preset]).parse_args(argv)
    width = height = args.size
    if args.size is None:
        width, height = args.width, args.height
    low = high = args.duration
    if args.duration is None:
        low, high = args.min_duration, args.max_duration
    spec = SyntheticSpec(
        width=width,
        height=height,
        fps=args.fps,
        sample_rate=args.sample_rate,
        min_duration=low,
        max_duration=high,
        min_event_len=args.min_event_len,
        max_event_len=args.max_event_len,
        min_events=args.min_events,
        max_events=args.max_events,
        kind_weights=tuple(args.kind_weights),
        shape_size=tuple(args.shape_size),
        background_levels=tuple(args.background_levels),
        visual_noise=args.visual_noise,
        audio_noise=args.audio_noise,
        crf=args.crf,
        gop=args.gop,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        occurrences=tuple(args.occurrences),
        overlap=args.overlap,
        class_queries=args.class_queries,
    )
    return args, spec
