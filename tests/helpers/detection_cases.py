"""Seeded ground truth and random predictions for the detection-mAP checks against the public
evaluations (tests/test_metrics_detection_public.py). The numbers recorded there were produced
by running the public code on exactly these inputs, so this generator must not change."""

from __future__ import annotations

import numpy as np

from lavis.datasets.schema import MomentRecord

CLASSES = ("dog barking", "man speaking", "car passing", "bell ringing", "people clapping", "guitar")


def make_database(seed: int, num_videos: int = 40) -> dict:
    """A UnAV-100-style release (``database`` -> ``annotations``) of ``num_videos`` test videos:
    1-3 classes per video, 1-3 segments per class (events of different classes overlap), and in
    every fifth video a near-duplicate segment (within 1e-3 s) that UnAV-100's evaluation drops."""
    rng = np.random.default_rng(seed)
    database = {}
    for v in range(num_videos):
        duration = float(np.round(rng.uniform(10.0, 60.0), 2))
        annotations = []
        for c in rng.choice(len(CLASSES), size=int(rng.integers(1, 4)), replace=False):
            for _ in range(int(rng.integers(1, 4))):
                start = float(np.round(rng.uniform(0.0, duration - 2.0), 3))
                end = float(np.round(min(duration, start + rng.uniform(1.0, 15.0)), 3))
                annotations.append({"segment": [start, end], "label": CLASSES[c], "label_id": int(c)})
        if v % 5 == 0:
            first = annotations[0]
            near = [first["segment"][0] + 0.0004, first["segment"][1] - 0.0007]
            annotations.append({"segment": near, "label": first["label"], "label_id": first["label_id"]})
        database[f"vid{v:03d}"] = {"subset": "test", "duration": duration, "annotations": annotations}
    return {"version": "synthetic", "database": database}


def random_predictions(records: list[MomentRecord], seed: int) -> list[dict]:
    """1-6 scored windows per query, best first: half of them jitter a ground-truth window (so
    every threshold sees hits and misses), half fall anywhere in the video. Scores are
    continuous, so no two detections tie."""
    rng = np.random.default_rng(seed)
    preds = []
    for record in records:
        windows = []
        for _ in range(int(rng.integers(1, 7))):
            if rng.random() < 0.5:
                start, end = record.windows[int(rng.integers(len(record.windows)))]
                length = max(end - start, 0.5)
                start += rng.normal(0.0, 0.25 * length)
                end += rng.normal(0.0, 0.25 * length)
            else:
                start, end = np.sort(rng.uniform(0.0, record.duration, size=2))
            start, end = sorted((float(np.clip(start, 0, record.duration)), float(np.clip(end, 0, record.duration))))
            windows.append([start, end, float(rng.random())])
        windows.sort(key=lambda w: -w[2])
        preds.append({"qid": record.qid, "pred_relevant_windows": windows})
    return preds
