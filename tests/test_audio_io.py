import numpy as np
import pytest
from av_media import make_stereo_audio, make_video

from lavis.datasets.audio_features import AudioClipConfig, ClapLogMel
from lavis.datasets.audio_io import Waveform, cut_clips, read_audio
from lavis.datasets.video_io import read_frames

SR = 16000


def rms(x):
    return float(np.sqrt(np.mean(np.square(x))))


def test_a_tone_lands_in_the_clips_of_its_time_range_only(tmp_path):
    # 6 s, frames sampled at 0.5, 1.5, ..., 5.5 s; the tone plays from 2.0 to 3.0 s.
    path = make_video(tmp_path / "tone.mp4", num_frames=60, fps=10, tone=(2.0, 3.0))
    frames = read_frames(path, 6)
    clips, mask = cut_clips(read_audio(path, SR), frames.timestamps, 0.8, SR)
    assert clips.shape == (6, int(0.8 * SR)) and clips.dtype == np.float32
    assert mask.all()
    energy = [rms(c) for c in clips]
    assert energy[2] > 0.2  # clip [2.1, 2.9] s lies inside the tone
    assert max(energy[:2] + energy[3:]) < 0.01


def test_audio_is_aligned_by_presentation_time_after_resampling(tmp_path):
    # AAC priming and 16 kHz -> 48 kHz resampling must not shift the onset.
    path = make_video(tmp_path / "onset.mp4", num_frames=30, fps=10, tone=(1.0, 2.0))
    wave = read_audio(path, 48000)
    assert wave.sample_rate == 48000 and wave.samples.dtype == np.float32
    onset = wave.start + np.argmax(np.abs(wave.samples) > 0.1) / 48000
    assert onset == pytest.approx(1.0, abs=0.003)
    assert len(wave.samples) / 48000 == pytest.approx(3.0, abs=0.05)


def test_stereo_is_averaged_to_mono(tmp_path):
    t = np.arange(2 * SR) / SR
    tone = 0.6 * np.sin(2 * np.pi * 500 * t)
    wave = read_audio(make_stereo_audio(tmp_path / "stereo.mp4", tone, np.zeros_like(tone)), SR)
    assert wave.samples.ndim == 1
    # The mean of the channels (0.3 peak), not swresample's -3 dB sum (0.42).
    assert np.abs(wave.samples[SR // 2 : SR]).max() == pytest.approx(0.3, abs=0.02)


def test_edge_clips_are_zero_padded_without_wrap_around(tmp_path):
    # Sound right from t = 0: the first clip (centred on t = 0) must hold it, and its half
    # before t = 0 must be zeros, not the end of the track.
    path = make_video(tmp_path / "start.mp4", num_frames=20, fps=10, tone=(0.0, 0.4))
    frames = read_frames(path, 20)
    assert frames.timestamps[0] == 0.0
    clips, mask = cut_clips(read_audio(path, SR), frames.timestamps[:1], 1.0, SR)
    half = SR // 2
    assert mask[0]
    assert not clips[0, :half].any()  # the padding part is exactly zero
    assert rms(clips[0, half : half + int(0.35 * SR)]) > 0.2  # not silent


def test_cut_clips_positions_and_padding_exactly():
    samples = np.arange(1, 11, dtype=np.float32)  # 10 samples at 10 Hz: t = 0.0 ... 0.9 s
    wave = Waveform(samples=samples, sample_rate=10, start=0.0)
    clips, mask = cut_clips(wave, np.array([0.0, 0.5, 0.9, 5.0]), 0.4, 10)
    np.testing.assert_array_equal(clips[0], [0, 0, 1, 2])  # [-0.2, 0.2): two zeros, no wrap
    np.testing.assert_array_equal(clips[1], [4, 5, 6, 7])
    np.testing.assert_array_equal(clips[2], [8, 9, 10, 0])  # past the end: zeros
    np.testing.assert_array_equal(clips[3], [0, 0, 0, 0])
    assert mask.tolist() == [True, True, True, False]  # a clip with no audio at all is masked
    # Audio that starts after the file's time 0 is placed at its own start.
    late = Waveform(samples=samples, sample_rate=10, start=0.5)
    np.testing.assert_array_equal(cut_clips(late, np.array([0.5]), 0.4, 10)[0][0], [0, 0, 1, 2])


def test_no_audio_stream_gives_zeros_and_a_false_mask(tmp_path):
    path = make_video(tmp_path / "silent.mp4", num_frames=20, with_audio=False)
    assert read_audio(path, SR) is None
    clips, mask = cut_clips(None, np.array([0.5, 1.5]), 0.5, SR)
    assert clips.shape == (2, SR // 2) and not clips.any() and not mask.any()


# The extractor's per-clip numpy spectrogram vs our batched torch one. Both work in float32
# precision, so they agree to 0.01 dB within 100 dB of a clip's peak and to 1 dB at the floor.
def _clips(cfg: AudioClipConfig) -> np.ndarray:
    n = int(round(cfg.clip_len * cfg.sampling_rate))
    t = np.arange(n) / cfg.sampling_rate
    rng = np.random.default_rng(0)
    half_tone = np.where(t >= t[n // 2], 0.5 * np.sin(2 * np.pi * 3000 * t), 0.0)
    return np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.1 * rng.standard_normal(n), np.zeros(n), half_tone]).astype(
        np.float32
    )


@pytest.mark.parametrize(
    "cfg",
    [
        AudioClipConfig(),  # CLAP htsat-fused: 48 kHz, 64 mels, hop 480, fft 1024, 10 s
        AudioClipConfig(
            sampling_rate=16000,
            clip_len=0.37,
            n_mels=16,
            hop_length=160,
            fft_window_size=256,
            max_length_s=1,
            frequency_min=0.0,
            frequency_max=8000.0,
            truncation="rand_trunc",
        ),
    ],
    ids=["clap_fused", "small_slaney"],
)
def test_log_mel_matches_clap_feature_extractor(cfg):
    clips = _clips(cfg)
    ours = ClapLogMel(cfg)(clips).numpy()
    extractor = cfg.feature_extractor()
    ref = np.stack(
        [extractor(c, sampling_rate=cfg.sampling_rate, return_tensors="np")["input_features"][0, 0] for c in clips]
    )
    assert ours.shape == ref.shape == (len(clips), cfg.num_mel_frames, cfg.n_mels)
    if cfg.sampling_rate == 48000:
        assert ours.shape[1:] == (1001, 64)
    for o, r in zip(ours, ref):
        near_peak = r > r.max() - 100
        assert np.abs(o - r)[near_peak].max() < 0.01
        assert np.abs(o - r).max() < 1.0


def test_clips_longer_than_clap_input_are_refused():
    with pytest.raises(ValueError, match="max_length_s"):
        AudioClipConfig(clip_len=12.0, max_length_s=10)
