import json

import pytest

from lavis.datasets.audio_features import AudioClipConfig
from lavis.datasets.schema import load_annotations
from mr_data.bench_loader import STAGES, main, one_record_per_video, profile_stages
from mr_data.synthetic import generate_dataset
from mr_data.synthetic_plan import SyntheticSpec


@pytest.fixture(scope="module")
def small_videos(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    spec = SyntheticSpec(min_duration=8.0, max_duration=10.0, max_event_len=3, val_fraction=0.0, test_fraction=0.3)
    paths = generate_dataset(out, num_videos=4, seed=2, spec=spec, workers=1)
    return paths["train"], out / "videos"


def test_stage_profile_covers_every_stage(small_videos):
    ann, video_root = small_videos
    records = one_record_per_video(load_annotations(ann), limit=2)
    assert len(records) == 2 and records[0].vid != records[1].vid
    audio = AudioClipConfig(
        sampling_rate=16000,
        clip_len=1.0,
        n_mels=16,
        hop_length=160,
        fft_window_size=400,
        max_length_s=2,
        frequency_max=8000.0,
    )
    times = profile_stages(records, video_root, num_frames=4, audio=audio, image_size=32)
    assert times.videos == 2 and set(times.wall) == set(STAGES) == set(times.cpu)
    assert all(v > 0 for v in times.wall.values()) and times.cpu_total > 0


def test_cli_prints_per_worker_rate_and_writes_json(small_videos, tmp_path, capsys):
    ann, video_root = small_videos
    out = tmp_path / "bench.json"
    args = [
        "--ann",
        str(ann),
        "--video-root",
        str(video_root),
        "--num-frames",
        "4",
        "--workers",
        "0",
        "--image-size",
        "32",
        "--sampling-rate",
        "16000",
        "--n-mels",
        "16",
        "--hop-length",
        "160",
        "--fft-window-size",
        "400",
        "--max-length-s",
        "2",
        "--clip-len",
        "1.0",
        "--json",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "seek+decode" in printed and "videos/s per worker" in printed
    figures = json.loads(out.read_text())
    assert figures["videos_per_s_per_worker"] > 0 and figures["workers"] == 0
