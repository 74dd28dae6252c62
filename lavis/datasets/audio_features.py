"""CLAP log-mel features of per-frame audio clips, computed in the DataLoader workers.

The features are those of transformers' ``ClapFeatureExtractor`` (channel 0 of its
``input_features``), computed for all T clips of a video at once in torch instead of T calls of
the extractor's numpy loop (20 clips of 1.5 s: ~30 ms instead of ~0.9 s of CPU; tests check
that they agree).

Padding choice: a clip (``clip_len``, e.g. 1.5 s) is shorter than CLAP's input
(``max_length_s``, 10 s), so it is padded with the extractor's ``"repeatpad"``: the clip is
repeated ``floor(max_length / clip_length)`` times, then zero-padded to ``max_length``. That is
what CLAP saw in pre-training for short sounds, and it is deterministic: a clip never exceeds
``max_length_s`` (checked), so the extractor's random crops and random "fusion" chunks never
apply (docs/differences.md). With ``truncation="fusion"`` (the htsat-fused checkpoints) the extractor uses
its HTK mel filter bank, with ``"rand_trunc"`` (unfused checkpoints) its Slaney one; the model's
CLAP tower must pass ``is_longer=False`` for every clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from transformers import ClapFeatureExtractor

from lavis.common.constraints import NonNegativeFloat, PositiveFloat, PositiveInt


@dataclass
class AudioClipConfig:
    """Per-frame audio clips and their CLAP log-mel features (defaults: laion/clap-htsat-fused)."""

    sampling_rate: PositiveInt = 48000
    clip_len: PositiveFloat = 1.5  # seconds of audio per sampled frame, centred on the frame
    n_mels: PositiveInt = 64  # the extractor's feature_size
    hop_length: PositiveInt = 480
    fft_window_size: PositiveInt = 1024
    max_length_s: PositiveInt = 10  # CLAP's input length; clips are repeat-padded to it
    frequency_min: NonNegativeFloat = 50.0
    frequency_max: PositiveFloat = 14000.0
    truncation: Literal["fusion", "rand_trunc"] = "fusion"  # selects the mel filter bank

    def __post_init__(self) -> None:
        if self.clip_len <= 0:
            raise ValueError(f"clip_len must be > 0 seconds, got {self.clip_len}")
        if self.clip_len > self.max_length_s:
            raise ValueError(
                f"clip_len ({self.clip_len} s) must not exceed max_length_s ({self.max_length_s} s): "
                "longer clips would be randomly cropped by CLAP's extractor"
            )
        if self.frequency_max > self.sampling_rate / 2:
            raise ValueError(f"frequency_max {self.frequency_max} is above Nyquist ({self.sampling_rate / 2})")

    @property
    def num_mel_frames(self) -> int:
        """Time steps of one clip's log-mel (1001 for 10 s at 48 kHz with hop 480)."""
        return self.max_length_s * self.sampling_rate // self.hop_length + 1

    def feature_extractor(self) -> ClapFeatureExtractor:
        """The transformers extractor these features reproduce."""
        return ClapFeatureExtractor(
            feature_size=self.n_mels,
            sampling_rate=self.sampling_rate,
            hop_length=self.hop_length,
            max_length_s=self.max_length_s,
            fft_window_size=self.fft_window_size,
            frequency_min=self.frequency_min,
            frequency_max=self.frequency_max,
            truncation=self.truncation,
            padding="repeatpad",
        )


def frame_sources(clip_samples: int, max_samples: int, fft_window: int, hop: int) -> np.ndarray:
    """Where each STFT frame of a repeat-padded clip reads from: int64 ``[F, fft_window]`` indices
    into the clip, ``clip_samples`` meaning a padding zero. ``F = max_samples // hop + 1``.

    This is the extractor's framing written as indices: ``repeatpad`` (tile the clip
    ``max_samples // L`` times, zero-pad to ``max_samples``), then centred frames with
    ``reflect`` padding of ``fft_window // 2`` on both sides.
    """
    tiled = (max_samples // clip_samples) * clip_samples
    num_frames = max_samples // hop + 1
    pos = np.arange(num_frames)[:, None] * hop - fft_window // 2 + np.arange(fft_window)[None, :]
    pos = np.where(pos < 0, -pos, pos)  # reflect at the start (numpy/torch "reflect": no edge repeat)
    pos = np.where(pos >= max_samples, 2 * (max_samples - 1) - pos, pos)  # and at the end
    return np.where(pos < tiled, pos % clip_samples, clip_samples)


class ClapLogMel:
    """Clips ``float32 [t, L]`` -> log-mel ``float32 [t, num_mel_frames, n_mels]`` (dB).

    A repeat-padded clip is periodic, so most of its ~1000 frames are copies of ~L/hop distinct
    ones (150 for 1.5 s at hop 480): we transform each distinct frame once and gather. Exact, not
    an approximation; it makes the features ~9x cheaper than a full ``torch.stft``.
    """

    def __init__(self, cfg: AudioClipConfig):
        self.cfg = cfg
        extractor = cfg.feature_extractor()
        bank = extractor.mel_filters if cfg.truncation == "fusion" else extractor.mel_filters_slaney
        self.mel_filters = torch.from_numpy(np.asarray(bank, dtype=np.float32))  # [n_freq, n_mels]
        self.window = torch.hann_window(cfg.fft_window_size, periodic=True)
        self.max_samples = cfg.max_length_s * cfg.sampling_rate
        self._plans: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _plan(self, clip_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(distinct frame sources ``[U, fft_window]``, frame -> distinct row ``[F]``), cached."""
        if clip_samples not in self._plans:
            sources = frame_sources(clip_samples, self.max_samples, self.cfg.fft_window_size, self.cfg.hop_length)
            distinct, inverse = np.unique(sources, axis=0, return_inverse=True)
            self._plans[clip_samples] = (torch.from_numpy(distinct), torch.from_numpy(inverse.reshape(-1)))
        return self._plans[clip_samples]

    def __call__(self, clips: np.ndarray | torch.Tensor) -> torch.Tensor:
        clips = torch.as_tensor(clips, dtype=torch.float32)
        if clips.ndim != 2 or clips.shape[-1] == 0:
            raise ValueError(f"clips must be [t, L] with L > 0, got {tuple(clips.shape)}")
        if clips.shape[-1] > self.max_samples:
            raise ValueError(f"clips of {clips.shape[-1]} samples exceed max_length ({self.max_samples})")
        distinct, inverse = self._plan(clips.shape[-1])
        with_zero = torch.nn.functional.pad(clips, (0, 1))  # index L reads the padding zero
        frames = with_zero[:, distinct] * self.window  # [t, U, fft_window]
        spectrum = torch.fft.rfft(frames)  # [t, U, n_freq]
        power = spectrum.real.square() + spectrum.imag.square()
        mel = torch.matmul(power, self.mel_filters)  # [t, U, n_mels]
        # The extractor floors at 1e-10 (mel_floor, min_value) before 10*log10 (reference 1).
        log_mel = 10.0 * torch.log10(mel.clamp_min(1e-10))
        return log_mel[:, inverse]  # [t, F, n_mels]
