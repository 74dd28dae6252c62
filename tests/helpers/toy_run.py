"""A toy model, dataset and task that satisfy the runner's contracts, for testing the loop itself
(resume, distribution, checkpoints) in seconds. Used by tests and by tests/helpers/ddp_worker.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from lavis.common.config import ExperimentConfig
from lavis.datasets.schema import MomentRecord
from lavis.runners.config import RunConfig


@dataclass
class ToyModelConfig:
    arch: str = "toy"
    model_type: str = "toy"
    dropout: float = 0.1
    nan_at_qid: list[str] = field(default_factory=list)


class ToyModel(nn.Module):
    """Regresses a window [s, e] (as fractions of the duration) from an 8-d feature."""

    def __init__(self, cfg: ToyModelConfig):
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(
            nn.Linear(8, 16), nn.LayerNorm(16), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(16, 2)
        )
        self.frozen = nn.Linear(8, 8)
        self.frozen.requires_grad_(False)

    def forward(self, batch):
        pred = self.net(self.frozen(batch["x"]) + batch["x"])
        loss = ((pred - batch["y"]) ** 2).mean()
        if any(q in self.cfg.nan_at_qid for q in batch["qid"]):
            loss = loss * float("nan")
        return {"loss": loss}

    def predict(self, batch):
        rel = self.net(self.frozen(batch["x"]) + batch["x"]).clamp(0, 1).sort(dim=-1).values
        out = []
        for r, d in zip(rel.tolist(), batch["duration"].tolist()):
            out.append([[r[0] * d, r[1] * d + 1e-3, 1.0]])
        return out


class ToyDataset(Dataset):
    def __init__(self, n: int, seed: int, prefix: str = "q"):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=g)
        w = torch.randn(8, 2, generator=g)
        self.y = torch.sigmoid(self.x @ w).sort(dim=-1).values
        self.records = [
            MomentRecord(
                qid=f"{prefix}{i}", vid=f"v{i}", query="q", duration=10.0, windows=[(float(a) * 10, float(b) * 10)]
            )
            for i, (a, b) in enumerate(self.y.tolist())
        ]

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i], "qid": self.records[i].qid, "duration": 10.0}

    @staticmethod
    def collater(samples):
        return {
            "x": torch.stack([s["x"] for s in samples]),
            "y": torch.stack([s["y"] for s in samples]),
            "qid": [s["qid"] for s in samples],
            "duration": torch.tensor([s["duration"] for s in samples]),
            "num_skipped": 0,
        }


class ToyTask:
    def move_to_device(self, batch, device):
        return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}

    def train_step(self, model, batch):
        return model(batch)["loss"]

    def valid_step(self, model, batch):
        inner = getattr(model, "module", model)
        return [{"qid": q, "pred_relevant_windows": w} for q, w in zip(batch["qid"], inner.predict(batch))]

    def evaluate(self, preds, records, skipped_videos=0):
        from lavis.common.windows import temporal_iou

        gt = {r.qid: r.windows[0] for r in records}
        ious = [temporal_iou(p["pred_relevant_windows"][0], gt[p["qid"]]) for p in preds]
        return {
            "brief": {"mIoU": 100 * sum(ious) / len(ious), "n": len(preds)},
            "qids": sorted(p["qid"] for p in preds),
        }

    def write_outputs(self, output_dir, split, preds, metrics, records):
        Path(output_dir, f"metrics_{split}.json").write_text(json.dumps(metrics))


def toy_experiment(output_dir: str | Path, **run_overrides) -> tuple[ExperimentConfig, ToyTask, ToyModel, dict]:
    run = RunConfig(
        output_dir=str(output_dir),
        device="cpu",
        amp="off",
        num_workers=0,
        batch_size_train=4,
        batch_size_eval=5,
        max_epoch=2,
        warmup_steps=2,
        init_lr=1e-2,
        valid_metric="mIoU",
        log_freq=1,
        hooks=["metrics_jsonl"],
    )
    model_overrides = {k: run_overrides.pop(k) for k in list(run_overrides) if k in ("dropout", "nan_at_qid")}
    for key, value in run_overrides.items():
        setattr(run, key, value)
    model_cfg = ToyModelConfig(**model_overrides)
    cfg = ExperimentConfig(model=model_cfg, datasets={}, run=run)
    torch.manual_seed(0)
    model = ToyModel(model_cfg)
    datasets = {"toy": {"train": ToyDataset(24, 1, "t"), "val": ToyDataset(7, 2, "v"), "test": ToyDataset(11, 3, "s")}}
    return cfg, ToyTask(), model, datasets


def train_losses(output_dir: str | Path) -> dict[int, float]:
    lines = Path(output_dir, "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines) if r["type"] == "train"}
