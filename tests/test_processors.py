import numpy as np
import pytest
import torch

from lavis.common.registry import registry
from lavis.common.typed import ConfigError
from lavis.datasets.processors import (
    CLIP_MEAN,
    CLIP_STD,
    BlipVideoEvalProcessor,
    BlipVideoTrainProcessor,
    VideoTrainProcessorConfig,
    build_processor,
)


def test_lavis_names_are_registered():
    assert registry.get("processor", "blip_video_eval") is BlipVideoEvalProcessor
    assert registry.get("processor", "blip2_video_eval") is BlipVideoEvalProcessor
    assert registry.get("processor", "blip2_video_train") is BlipVideoTrainProcessor
    assert registry.get("processor", "blip_video_train") is BlipVideoTrainProcessor


def test_eval_resizes_and_normalizes_with_clip_statistics():
    frames = np.full((3, 48, 80, 3), 128, dtype=np.uint8)
    frames[..., 0] = 255
    out = build_processor({"name": "blip_video_eval", "image_size": 32}, "test")(frames)
    assert out.shape == (3, 3, 32, 32) and out.dtype == torch.float32
    expected = [(v / 255 - m) / s for v, m, s in zip((255, 128, 128), CLIP_MEAN, CLIP_STD)]
    for c in range(3):
        torch.testing.assert_close(out[:, c], torch.full((3, 32, 32), expected[c]), atol=1e-5, rtol=0)


def test_eval_keeps_the_whole_frame():
    # A bright left half stays the left half after resizing (no crop at eval).
    frames = np.zeros((1, 40, 40, 3), dtype=np.uint8)
    frames[:, :, :20] = 255
    out = BlipVideoEvalProcessor()(frames)
    assert out.shape == (1, 3, 224, 224)
    assert out[0, :, :, :100].mean() > 1.0 and out[0, :, :, 124:].mean() < -1.0


def test_train_crop_is_shared_by_all_frames_and_seeded():
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, 60, 90, 3), dtype=np.uint8)
    frames = np.repeat(one, 4, axis=0)
    proc = BlipVideoTrainProcessor(VideoTrainProcessorConfig(image_size=24))
    out = proc(frames, np.random.default_rng(5))
    assert out.shape == (4, 3, 24, 24)
    for i in range(1, 4):
        torch.testing.assert_close(out[i], out[0], atol=0, rtol=0)  # same crop for every frame
    torch.testing.assert_close(proc(frames, np.random.default_rng(5)), out, atol=0, rtol=0)
    assert not torch.equal(proc(frames, np.random.default_rng(6)), out)


def test_crop_boxes_respect_scale_ratio_and_bounds():
    proc = BlipVideoTrainProcessor(VideoTrainProcessorConfig(min_scale=0.5, max_scale=1.0))
    rng = np.random.default_rng(0)
    for _ in range(300):
        top, left, h, w = proc.crop_box(90, 160, rng)
        assert top >= 0 and top + h <= 90 and left >= 0 and left + w <= 160
        assert 0.45 <= h * w / (90 * 160) <= 1.0
    # A frame far wider than any allowed ratio falls back to the centred max-ratio crop.
    assert proc.crop_box(10, 400, rng) == (0, (400 - 13) // 2, 10, 13)


def test_bad_input_and_bad_configs_fail_clearly():
    with pytest.raises(ValueError, match="uint8"):
        BlipVideoEvalProcessor()(np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="generator"):
        BlipVideoTrainProcessor()(np.zeros((2, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(ConfigError, match="valid keys.*image_size"):
        build_processor({"name": "blip_video_eval", "min_scale": 0.3}, "vis_processor.eval")
    with pytest.raises(ConfigError, match="vis_processor.eval: unknown processor .* registered processors"):
        build_processor({"name": "no_such_processor"}, "vis_processor.eval")
    with pytest.raises(ConfigError, match="min_scale"):
        build_processor({"name": "blip2_video_train", "min_scale": 0.0}, "vis_processor.train")
