import av
import numpy as np
import pytest
from av_media import BRIGHT, DARK, make_late_video, make_video, remux_faststart, square_brightness

from lavis.datasets.video_io import VideoDecodeError, read_frames, sample_frame_indices


def test_eval_sampling_takes_the_middle_frame_of_each_interval():
    assert sample_frame_indices(100, 10, train=False).tolist() == [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]
    # 30 frames in 20 intervals of 1.5 frames: the middle of [1.5k, 1.5k + 1.5)
    assert sample_frame_indices(30, 20, train=False).tolist() == [int(1.5 * k + 0.75) for k in range(20)]


def test_train_sampling_draws_one_frame_per_interval_reproducibly():
    n, t = 103, 10
    draws = [sample_frame_indices(n, t, True, np.random.default_rng(s)) for s in range(50)]
    for idx in draws:
        for k, i in enumerate(idx):
            assert k * n // t <= i < (k + 1) * n // t
    again = sample_frame_indices(n, t, True, np.random.default_rng(7))
    assert again.tolist() == draws[7].tolist()
    assert len({tuple(d) for d in draws}) > 40  # actually random across seeds
    with pytest.raises(ValueError, match="generator"):
        sample_frame_indices(n, t, True, None)


def test_short_videos_give_every_frame():
    assert sample_frame_indices(5, 8, train=False).tolist() == [0, 1, 2, 3, 4]
    assert sample_frame_indices(5, 8, True, np.random.default_rng(0)).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="at least one frame"):
        sample_frame_indices(0, 8, train=False)


@pytest.fixture(scope="module")
def square_video(tmp_path_factory):
    # 60 frames at 10 fps; the square is in frames 15 and 35, two of the eval-sampled frames
    # (5, 15, ..., 55), and in frame 36, which is not sampled.
    path = tmp_path_factory.mktemp("video") / "square.mp4"
    return make_video(path, num_frames=60, fps=10, square_frames=[15, 35, 36], gop=12)


def test_sampled_frames_have_real_timestamps_and_the_right_pixels(square_video):
    got = read_frames(square_video, 6, "pyav")
    assert got.indices.tolist() == [5, 15, 25, 35, 45, 55]
    np.testing.assert_allclose(got.timestamps, [0.5, 1.5, 2.5, 3.5, 4.5, 5.5], atol=1e-6)
    assert got.frames.shape == (6, 64, 64, 3) and got.frames.dtype == np.uint8
    bright = [square_brightness(f) > (BRIGHT + DARK) / 2 for f in got.frames]
    assert bright == [False, True, False, True, False, False]
    assert got.num_video_frames == 60
    assert got.duration == pytest.approx(6.0, abs=0.05)


def _all_frames(path):
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_seek_decoding_matches_a_full_decode_and_decodes_less(square_video):
    reference = _all_frames(square_video)
    for train, seed in ((False, None), (True, 3), (True, 4)):
        generator = np.random.default_rng(seed) if train else None
        got = read_frames(square_video, 4, "pyav", train, generator)
        for frame, index in zip(got.frames, got.indices):
            np.testing.assert_array_equal(frame, reference[index])
    # Two frames far apart in a 60-frame video with a keyframe every 12: two short GOP walks.
    got = read_frames(square_video, 2, "pyav")
    assert got.indices.tolist() == [15, 45]
    assert got.num_decoded < 30


def test_too_short_video_returns_what_exists(tmp_path):
    path = make_video(tmp_path / "short.mp4", num_frames=4, fps=10, square_frames=[2])
    got = read_frames(path, 8, "pyav")
    assert got.indices.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(got.timestamps, [0.0, 0.1, 0.2, 0.3], atol=1e-6)
    assert square_brightness(got.frames[2]) > 200 and square_brightness(got.frames[1]) < 50


@pytest.mark.parametrize("kind", ["missing", "empty", "garbage", "truncated", "truncated_indexed", "audio_only"])
def test_unreadable_files_raise_a_clear_error(tmp_path, square_video, kind):
    path = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif kind == "truncated":
        data = square_video.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "truncated_indexed":  # index at the front: opens fine, demuxing stops early
        data = remux_faststart(square_video, tmp_path / "faststart.mp4").read_bytes()
        ftyp = int.from_bytes(data[:4], "big")
        assert data[ftyp + 4 : ftyp + 8] == b"moov"
        index_end = ftyp + int.from_bytes(data[ftyp : ftyp + 4], "big")
        path.write_bytes(data[: index_end + (len(data) - index_end) // 2])  # half of the media
    elif kind == "audio_only":
        with av.open(str(path), "w") as container:
            stream = container.add_stream("aac", rate=16000)
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    expected = {
        "missing": "not found",
        "empty": "empty file",
        "audio_only": "no video stream",
        "truncated_indexed": "truncated file: its index lists 60 video frames",
    }
    with pytest.raises(VideoDecodeError, match=expected.get(kind, "cannot open")) as err:
        read_frames(path, 4, "pyav")
    assert str(path) in str(err.value)


def test_unknown_backend_is_refused(square_video):
    with pytest.raises(ValueError, match="pyav"):
        read_frames(square_video, 4, "opencv")


def test_decord_gives_the_same_indices_timestamps_and_frames(square_video):
    pytest.importorskip("decord")
    for train in (False, True):
        a = read_frames(square_video, 6, "pyav", train, np.random.default_rng(1) if train else None)
        b = read_frames(square_video, 6, "decord", train, np.random.default_rng(1) if train else None)
        assert a.indices.tolist() == b.indices.tolist()
        np.testing.assert_allclose(a.timestamps, b.timestamps, atol=1e-4)
        np.testing.assert_array_equal(a.frames, b.frames)
        assert a.num_video_frames == b.num_video_frames
        assert a.duration == pytest.approx(b.duration, abs=0.05)


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_timestamps_are_on_the_file_clock_when_video_starts_late(tmp_path, backend):
    # Audio from 0 s, first video frame at 0.5 s: frame i is shown at 0.5 + i / 10 s.
    if backend == "decord":
        pytest.importorskip("decord")
    got = read_frames(make_late_video(tmp_path / "late.mp4", first_pts=5, num_frames=30), 5, backend)
    assert got.indices.tolist() == [3, 9, 15, 21, 27]
    np.testing.assert_allclose(got.timestamps, [0.8, 1.4, 2.0, 2.6, 3.2], atol=1e-4)
