"""The saliency head (``model.saliency``): per-frame targets, shapes and gradients with every
fusion and with cached features, frame relevance at inference, clip scores through the evaluator,
window re-scoring, and the long-video merge."""

import numpy as np
import pytest
import torch

from lavis.common.registry import registry
from lavis.datasets.saliency_targets import frame_relevance
from lavis.datasets.schema import MomentRecord
from lavis.inference.long_video import Chunk, merge_chunk_windows, merge_frame_relevance
from lavis.models.blip2_mr.answer import ScoredWindows, relevance_inside, rescore_windows
from lavis.models.blip2_mr.model import Blip2MR
from lavis.models.blip2_mr.random_batch import random_batch
from lavis.models.blip2_mr.saliency import SaliencyConfig, saliency_loss
from lavis.models.model_config import model_config
from lavis.tasks.metrics_hl import clip_saliency
from lavis.tasks.moment_retrieval import MomentRetrievalTask

pytestmark = pytest.mark.usefixtures("one_thread")
FROZEN = ["model.freeze_vit=true", "model.freeze_vit_ln=true", "model.freeze_qformer=true", "model.freeze_audio=true"]


def tiny(*options, seed=0):
    torch.manual_seed(seed)
    return Blip2MR.from_config(model_config("blip2_mr", "tiny", ["model.saliency.enabled=true", *options]))


def batch_for(model, b=2, t=6, seed=0):
    return random_batch(model.cfg, b, t, duration=20.0, audio_frames=40, generator=torch.Generator().manual_seed(seed))


def record(windows, clips=None, scores=None, duration=20.0):
    return MomentRecord(
        qid=1, vid="v", query="q", duration=duration, windows=windows, relevant_clip_ids=clips, saliency_scores=scores
    )


def test_targets_from_windows_and_from_highlight_scores():
    times = torch.tensor([0.5, 3.0, 4.5, 6.0, 9.0, 0.0])
    mask = torch.tensor([True, True, True, True, True, False])
    # Inside [3, 6] (ends included): 1; outside and at the padded frame: 0.
    assert frame_relevance(record([(3.0, 6.0)]), times, mask).tolist() == [0, 1, 1, 1, 0, 0]
    # QVHighlights: clip 1 = [2, 4) scored (4, 4, 2), clip 2 = [4, 6) scored (1, 2, 3), clip 3 = [6, 8)
    # scored 4s: a frame inside the window [2, 6] gets its clip's mean / 4 (6.0 is the window's end,
    # in clip 3); clip 4 = [8, 10) is scored but lies outside the window, so 9.0 stays 0.
    scored = record([(2.0, 6.0)], clips=[1, 2, 3, 4], scores=[[4, 4, 2], [1, 2, 3], [4, 4, 4], [4, 4, 4]])
    got = frame_relevance(scored, times, mask).tolist()
    assert got == pytest.approx([0.0, 10 / 12, 6 / 12, 1.0, 0.0, 0.0])


def test_a_window_between_two_frames_marks_the_frame_nearest_its_centre():
    # 60 frames of a 1,402 s TACoS video lie 23.4 s apart: most moments fall between two frames.
    times = torch.arange(60, dtype=torch.float64) * 23.37 + 11.7
    mask = torch.ones(60, dtype=torch.bool)
    got = frame_relevance(record([(100.0, 105.0), (700.0, 760.0)], duration=1402.2), times, mask)
    nearest = int(torch.argmin((times - 102.5).abs()))
    inside = ((times >= 700) & (times <= 760)).nonzero().flatten().tolist()
    assert got.nonzero().flatten().tolist() == sorted([nearest, *inside]) and got.max() == 1.0
    # A window without frames never marks a padded frame, and QVHighlights' scores carry over: the
    # window [4, 6] (clip 2, scored (1, 2, 3)) lies between the frames at 3.0 and 6.5.
    times = torch.tensor([0.5, 3.0, 6.5, 9.0, 5.0])
    mask = torch.tensor([True, True, True, True, False])
    scored = record([(4.0, 6.0)], clips=[2], scores=[[1, 2, 3]])
    assert frame_relevance(scored, times, mask).tolist() == pytest.approx([0.0, 0.0, 0.5, 0.0, 0.0])


def test_losses_on_hand_computed_cases():
    logits = torch.tensor([2.0, -1.0, 0.5, 0.0])
    targets = torch.tensor([1.0, 0.0, 1.0, 0.0])
    sample_of = torch.tensor([0, 0, 1, 1])
    bce = saliency_loss(logits, targets, sample_of, SaliencyConfig(loss="bce"))
    expected = -np.mean(
        [np.log(1 / (1 + np.exp(-2))), np.log(1 - 1 / (1 + np.exp(1))), np.log(1 / (1 + np.exp(-0.5))), np.log(0.5)]
    )
    assert float(bce) == pytest.approx(expected, rel=1e-5)
    # Margin: pairs (0 over 1) and (2 over 3) only, never across samples: relu(1 - 3), relu(1 - 0.5).
    margin = saliency_loss(logits, targets, sample_of, SaliencyConfig(loss="margin", margin=1.0))
    assert float(margin) == pytest.approx((0.0 + 0.5) / 2)


@pytest.mark.parametrize("fusion", sorted(registry.names("fusion")))
def test_head_trains_with_every_fusion(fusion):
    model = tiny(f"model.fusion.name={fusion}")
    batch = batch_for(model)
    out = model(batch)
    assert set(out) == {"loss", "loss_lm", "loss_saliency"}
    assert float(out["loss"].detach()) == pytest.approx(float(out["loss_lm"] + out["loss_saliency"]), rel=1e-5)
    # The saliency loss alone (loss_lm is detached) reaches the head, the projection and the fusion.
    (out["loss"] - out["loss_lm"]).backward()
    assert model.saliency_head.proj.weight.grad.abs().sum() > 0
    assert model.language_projection.weight.grad.abs().sum() > 0
    fusion_grads = [p.grad for p in model.fusion.parameters() if p.requires_grad]
    assert all(g is not None for g in fusion_grads) and (
        not fusion_grads or sum(g.abs().sum() for g in fusion_grads) > 0
    )


def test_head_off_changes_nothing():
    torch.manual_seed(0)
    plain = Blip2MR.from_config(model_config("blip2_mr", "tiny")).eval()  # eval: no dropout draws
    with_head = tiny().eval()
    with_head.load_state_dict(plain.state_dict(), strict=False)  # same weights but the head's
    batch = batch_for(plain)
    assert plain.saliency_head is None and "loss_saliency" not in plain(batch)
    assert float(plain(batch)["loss"].detach()) == pytest.approx(float(with_head(batch)["loss_lm"]), rel=1e-6)


def test_head_trains_on_cached_features():
    model = tiny(*FROZEN).eval()  # eval: the two passes draw no dropout
    live = batch_for(model)
    cached = {k: v for k, v in live.items() if k not in ("video", "audio_features")}
    cached.update(model.encode_frozen(live), feature_key=[model.frozen_key] * 2)
    out = model(cached)
    out["loss"].backward()
    assert model.saliency_head.proj.weight.grad.abs().sum() > 0
    assert float(out["loss"].detach()) == pytest.approx(float(model(live)["loss"].detach()), rel=1e-4)


def test_predictions_carry_frame_relevance_and_clip_scores():
    model = tiny().eval()
    batch = batch_for(model, b=2, t=6)
    batch["frame_mask"][1, 4:] = False  # the second video has 4 frames
    preds = model.predict(batch)
    assert [len(p.frame_scores) for p in preds] == [6, 4]
    assert preds[1].frame_times == batch["timestamps"][1, :4].tolist()
    assert all(0.0 <= s <= 1.0 for p in preds for s in p.frame_scores)
    rows = MomentRetrievalTask.valid_step(model, batch)
    assert [len(r["pred_saliency_scores"]) for r in rows] == [10, 10]  # int(20 s / 2 s) clips each


def test_clip_scores_interpolate_the_frames_at_clip_centres():
    # Frames at 1, 5, 9 s; clips of 2 s in an 11 s video: 5 clips centred at 1, 3, 5, 7, 9.
    assert clip_saliency([5.0, 1.0, 9.0], [1.0, 0.0, 0.0], 11.0, 2.0) == [0.0, 0.5, 1.0, 0.5, 0.0]


def test_highlight_metrics_of_model_predictions_through_the_task():
    model = tiny().eval()
    batch = batch_for(model, b=2, t=6)
    rows = MomentRetrievalTask.valid_step(model, batch)
    records = [
        MomentRecord(
            qid=q,
            vid="v",
            query="q",
            duration=20.0,
            windows=list(w),
            relevant_clip_ids=[int(w[0][0] // 2)],
            saliency_scores=[[4, 4, 4]],
        )
        for q, w in zip(batch["qid"], batch["windows"])
    ]
    metrics = MomentRetrievalTask().evaluate(rows, records)
    assert "HL-min-VeryGood-mAP" in metrics["brief"] and "HL-min-VeryGood" in metrics
    # Ground truth without highlight annotations (Charades-STA): windows are scored, HL skipped.
    plain = [MomentRecord(qid=r.qid, vid="v", query="q", duration=20.0, windows=r.windows) for r in records]
    assert "HL-min-VeryGood-mAP" not in MomentRetrievalTask().evaluate(rows, plain)["brief"]


def test_rescoring_ranks_windows_by_the_evidence_inside_them():
    times = [1.0, 3.0, 5.0, 7.0, 9.0]
    scored = ScoredWindows(
        [[0.0, 2.0, 0.6], [6.0, 8.0, 0.4]], False, frame_times=times, frame_scores=[0.1, 0.1, 0.1, 0.9, 0.1]
    )
    rescore_windows(scored)
    assert [w[:2] for w in scored.windows] == [[6.0, 8.0], [0.0, 2.0]]
    assert scored.windows[1][2] == pytest.approx(0.6 * 0.1)
    # Between two frames the curve is interpolated: [6, 8] covers 0.5 .. 0.9 .. 0.5.
    assert relevance_inside([6.0, 8.0], times, [0.1, 0.1, 0.1, 0.9, 0.1]) == pytest.approx(0.7, abs=0.02)


def test_long_video_ranking_prefers_the_chunk_whose_frames_show_the_moment():
    chunks = [Chunk(0.0, 10.0), Chunk(10.0, 20.0)]
    times = [1.0, 3.0, 5.0, 7.0, 9.0]
    # Both chunks' beams are equally sure of a window (vote 0.9); only chunk 2's frames agree.
    per_chunk = [
        ScoredWindows([[2.0, 4.0, 0.9]], False, frame_times=times, frame_scores=[0.05] * 5),
        ScoredWindows([[4.0, 6.0, 0.9]], False, frame_times=times, frame_scores=[0.05, 0.1, 0.95, 0.1, 0.05]),
    ]
    for scored in per_chunk:
        rescore_windows(scored)
    merged = merge_chunk_windows([s.windows for s in per_chunk], chunks, 0.5, 10)
    assert merged[0][:2] == [14.0, 16.0] and merged[0][2] > 5 * merged[1][2]
    video_times, relevance = merge_frame_relevance([(s.frame_times, s.frame_scores) for s in per_chunk], chunks)
    assert video_times == [1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0, 17.0, 19.0]
    assert relevance[7] == pytest.approx(0.95)


def test_overlapping_chunks_average_the_frames_they_share():
    chunks = [Chunk(0.0, 10.0), Chunk(5.0, 15.0)]
    times, relevance = merge_frame_relevance([([6.0], [0.2]), ([1.0], [0.6])], chunks)
    assert times == [6.0] and relevance == [pytest.approx(0.4)]


def test_long_video_benchmark_scores_both_rankings(tiny_run, tmp_path, capsys):
    import json

    from benchmarks.long_videos import main

    # "Long" relative to the tiny run's 8-10 s training videos: each video is several chunks.
    argv = [
        "--run-dir",
        str(tiny_run.run_dir),
        "--data",
        str(tmp_path / "long"),
        "--num-videos",
        "3",
        "--seconds",
        "24",
        "30",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["queries"] >= 3 and set(result) >= {"vote", "vote_x_saliency", "short_test"}
    for scoring in ("vote", "vote_x_saliency"):
        assert 0 <= result[scoring]["R1@0.5"] <= 100 and "ratio_to_short_R1@0.5" in result[scoring]
