"""The video index (issue 22): a video's decoding and towers run once per model and sampling, in
memory and on disk; a stale or damaged entry is never used; every fusion gives from the index
what it gives from pixels."""

import json
import logging
import os
import shutil
import threading

import pytest
import torch
from av_media import make_video

from lavis import load_model
from lavis.common.registry import registry
from lavis.datasets.schema import load_annotations
from lavis.datasets.video_inputs import VideoInputReader
from lavis.inference.index_store import DiskIndex
from lavis.inference.long_video import chunk_spans
from lavis.inference.video import VideoReader
from lavis.models.blip2_mr.model import Blip2MR
from lavis.models.blip2_mr.random_batch import random_batch
from lavis.models.model_config import model_config


class Counted:
    """Counts the calls of a predictor's reader and towers."""

    def __init__(self, predictor, monkeypatch):
        self.reads = self.towers = 0
        read, towers = predictor.reader.read, predictor.model.encode_frozen

        def count_read(*args, **kwargs):
            self.reads += 1
            return read(*args, **kwargs)

        def count_towers(*args, **kwargs):
            self.towers += 1
            return towers(*args, **kwargs)

        monkeypatch.setattr(predictor.reader, "read", count_read)
        monkeypatch.setattr(predictor.model, "encode_frozen", count_towers)


def without_timing(results):
    return [{k: v for k, v in r.items() if k != "timing"} for r in results]


@pytest.fixture(scope="module")
def case(tiny_run):
    records = load_annotations(tiny_run.data / "test.jsonl")
    video = tiny_run.data / "videos" / records[0].video_file
    other = tiny_run.data / "videos" / next(r.video_file for r in records if r.vid != records[0].vid)
    return tiny_run.run_dir, video, other, [r.query for r in records[:3]]


def test_a_video_is_indexed_once_and_every_later_query_reuses_it(case, monkeypatch, one_thread):
    run_dir, video, _, queries = case
    predictor = load_model(run_dir, device="cpu")
    calls = Counted(predictor, monkeypatch)
    first = predictor.predict(video, queries[:2])
    assert (calls.reads, calls.towers) == (1, 1)  # one chunk: one towers batch for both queries
    assert first[0]["timing"] == first[1]["timing"] and first[0]["timing"]["index"] == "computed"
    assert first[0]["timing"]["decode_s"] > 0 and first[0]["timing"]["towers_s"] > 0
    later = predictor.predict(video, queries[2])
    assert (calls.reads, calls.towers) == (1, 1)
    timing = later[0]["timing"]
    assert timing["index"] == "memory" and timing["decode_s"] == timing["towers_s"] == 0.0
    assert 0 < timing["saved_s"] <= first[0]["timing"]["decode_s"] + first[0]["timing"]["towers_s"]
    assert timing["total_s"] >= timing["llm_s"] > 0 and timing["queries"] == 1
    # The same answers as from pixels every time (a predictor that keeps no index).
    fresh = load_model(run_dir, device="cpu", index_size=0)
    assert without_timing(fresh.predict(video, queries)) == without_timing(first + later)
    info = predictor.info
    assert info["threads"] == 1 and info["device"] == "cpu" and info["checkpoint_name"] == "checkpoint_best.pt"
    assert info["run_dir"] == str(run_dir.resolve()) and info["index_size"] == 16 and info["index_dir"] is None


def test_memory_keeps_the_least_recently_used_out_first(case, monkeypatch, one_thread):
    run_dir, video, other, queries = case
    predictor = load_model(run_dir, device="cpu", index_size=1)
    calls = Counted(predictor, monkeypatch)
    predictor.predict(video, queries[0])
    predictor.predict(other, queries[0])  # drops the first video
    assert predictor.predict(other, queries[1])[0]["timing"]["index"] == "memory"
    assert predictor.predict(video, queries[1])[0]["timing"]["index"] == "computed"
    assert calls.reads == 3 and len(predictor.memory) == 1


def test_on_disk_a_video_is_never_decoded_again_by_the_same_model(case, tmp_path, monkeypatch, one_thread):
    run_dir, video, _, queries = case
    index = tmp_path / "index"
    first = load_model(run_dir, device="cpu", index_dir=index).predict(video, queries, timeline_dir=tmp_path / "a")
    assert first[0]["timing"]["index"] == "computed"
    (entry,) = [p for p in index.glob("*/*") if p.is_dir()]
    assert sorted(p.name for p in entry.iterdir()) == ["index.json", "shard-00000.json", "shard-00000.safetensors"]
    assert not list(index.glob("*/.tmp-*"))
    another = load_model(run_dir, device="cpu", index_dir=index)  # another process of the same model
    monkeypatch.setattr(another.reader, "read", lambda *a, **k: pytest.fail("decoded again"))
    again = another.predict(video, queries, timeline_dir=tmp_path / "b")
    assert again[0]["timing"]["index"] == "disk" and again[0]["timing"]["saved_s"] > 0
    strip = [[{k: v for k, v in r.items() if k not in ("timing", "timeline")} for r in rs] for rs in (first, again)]
    assert strip[0] == strip[1]
    assert (tmp_path / "b" / f"{video.stem}_q0.png").stat().st_size > 10_000  # frames and loudness from the index


def recompute_count(run_dir, index, video, query, monkeypatch, **load):
    predictor = load_model(run_dir, device="cpu", index_dir=index, **load)
    calls = Counted(predictor, monkeypatch)
    result = predictor.predict(video, query)[0]
    return result["timing"]["index"], calls.reads


def test_a_changed_file_is_indexed_again(case, tmp_path, monkeypatch, one_thread):
    run_dir, video, _, queries = case
    copy = tmp_path / "video.mp4"
    shutil.copyfile(video, copy)
    index = tmp_path / "index"
    assert recompute_count(run_dir, index, copy, queries[0], monkeypatch) == ("computed", 1)
    assert recompute_count(run_dir, index, copy, queries[0], monkeypatch) == ("disk", 0)
    stat = copy.stat()
    # Same size, same mtime, other bytes: only the content hash tells.
    data = bytearray(copy.read_bytes())
    data[-100] ^= 0xFF
    copy.write_bytes(bytes(data))
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert copy.stat().st_size == stat.st_size and copy.stat().st_mtime_ns == stat.st_mtime_ns
    assert recompute_count(run_dir, index, copy, queries[0], monkeypatch) == ("computed", 1)
    with open(copy, "ab") as f:  # another size
        f.write(b"\0" * 16)
    assert recompute_count(run_dir, index, copy, queries[0], monkeypatch) == ("computed", 1)
    # A new mtime alone (the same bytes) changes no feature: the entry holds.
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert recompute_count(run_dir, index, copy, queries[0], monkeypatch) == ("disk", 0)


def test_another_model_or_other_sampling_settings_index_again(case, tmp_path, monkeypatch, one_thread):
    run_dir, video, _, queries = case
    index = tmp_path / "index"
    assert recompute_count(run_dir, index, video, queries[0], monkeypatch) == ("computed", 1)
    span = load_model(run_dir, device="cpu").span
    assert recompute_count(run_dir, index, video, queries[0], monkeypatch, span=span / 2) == ("computed", 1)
    assert recompute_count(run_dir, index, video, queries[0], monkeypatch, span=span / 2, overlap=0.25) == (
        "computed",
        1,
    )
    frames = load_model(run_dir, device="cpu", index_dir=index)
    inputs = frames.reader.inputs
    frames.reader = VideoReader(
        VideoInputReader(3, inputs.audio, inputs.backend, inputs.with_audio), frames.reader.processor
    )
    assert frames.predict(video, queries[0])[0]["timing"]["index"] == "computed"
    # Other tower weights (e.g. another checkpoint's ViT LayerNorm): another frozen key.
    other = load_model(run_dir, device="cpu", index_dir=index)
    before = other.model.frozen_key
    with torch.no_grad():
        other.model.vision_model.post_layernorm.weight.mul_(1.5)
    assert other.model.refresh_frozen_key() != before
    assert other.predict(video, queries[0])[0]["timing"]["index"] == "computed"
    assert len(list(index.iterdir())) == 2  # a folder per frozen key
    assert recompute_count(run_dir, index, video, queries[0], monkeypatch) == ("disk", 0)  # the first still holds


@pytest.mark.parametrize("damage", ["flip", "truncate", "index", "sidecar-only", "settings"])
def test_a_damaged_entry_is_recomputed_and_replaced(case, tmp_path, monkeypatch, caplog, one_thread, damage):
    run_dir, video, _, queries = case
    index = tmp_path / "index"
    recompute_count(run_dir, index, video, queries[0], monkeypatch)
    (entry,) = [p for p in index.glob("*/*") if p.is_dir()]
    shard = entry / "shard-00000.safetensors"
    if damage == "flip":
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 0x01
        shard.write_bytes(bytes(data))
    elif damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:-10])
    elif damage == "index":
        (entry / "index.json").write_text("{not json")
    elif damage == "sidecar-only":
        shard.unlink()
    else:  # a consistent entry whose settings were edited: its recorded settings no longer match
        meta = (entry / "index.json").read_text()
        (entry / "index.json").write_text(meta.replace('"overlap": 0.5', '"overlap": 0.4'))
    with caplog.at_level(logging.WARNING):
        assert recompute_count(run_dir, index, video, queries[0], monkeypatch) == ("computed", 1)
    assert "is not usable" in caplog.text
    assert recompute_count(run_dir, index, video, queries[0], monkeypatch) == ("disk", 0)  # replaced


def test_writers_at_once_leave_one_whole_entry(case, tmp_path, one_thread):
    run_dir, video, _, _ = case
    predictor = load_model(run_dir, device="cpu")
    key = predictor.index_key(video)
    entry, _ = predictor.index(video)
    disk = DiskIndex(tmp_path / "index")
    barrier = threading.Barrier(4)
    errors = []

    def write():
        barrier.wait()
        try:
            disk.save(key, entry)
        except Exception as err:  # noqa: BLE001 (any failure fails the test below)
            errors.append(err)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    loaded = disk.load(key)
    assert loaded is not None and torch.equal(loaded.rows["qformer_tokens"], entry.rows["qformer_tokens"])
    assert [p.name for p in disk.folder(key).parent.iterdir()] == [key.name]  # no temporary folders left


def test_every_chunk_of_a_long_video_is_indexed(case, tmp_path, one_thread):
    run_dir, _, _, queries = case
    predictor = load_model(run_dir, device="cpu", index_dir=tmp_path / "index")
    long_video = make_video(tmp_path / "long.mp4", num_frames=8 * 32, fps=8, gop=16, tone=(20.0, 22.0))
    entry, _ = predictor.index(long_video)
    chunks = chunk_spans(entry.duration, predictor.span, 0.5)
    assert entry.chunks == chunks and len(chunks) > 2
    assert entry.rows["qformer_tokens"].shape[0] == len(chunks) and bool(entry.rows["frame_mask"].any(1).all())
    loaded = DiskIndex(tmp_path / "index").load(predictor.index_key(long_video))
    assert loaded.chunks == chunks
    assert all(torch.equal(loaded.rows[k], entry.rows[k]) for k in entry.rows)
    [result] = predictor.predict(long_video, queries[0])
    assert [(c["start"], c["end"]) for c in result["chunks"]] == [(c.start, c.end) for c in chunks]


@pytest.mark.parametrize("position", ["early", "late"])
@pytest.mark.parametrize("fusion", registry.names("fusion"))
def test_every_fusion_and_the_saliency_head_give_the_same_from_the_index(fusion, position, one_thread):
    options = [
        f"model.fusion.name={fusion}",
        f"model.fusion.position={position}",
        "model.saliency.enabled=true",
        "model.generation.max_new_tokens=5",
    ]
    torch.manual_seed(0)
    model = Blip2MR.from_config(model_config("blip2_mr", "tiny", options)).eval().requires_grad_(False)
    batch = random_batch(model.cfg, batch_size=3, num_frames=4, generator=torch.Generator().manual_seed(1))
    batch["audio_mask"][1, 2:] = False  # frames without sound too
    batch["query"] = ["a dog barks", "a dog barks", "the door closes"]  # same video, other queries
    for key in ("video", "audio_features"):
        batch[key][2] = batch[key][0]
    from_pixels = model.predict(batch)
    indexed = {k: v for k, v in batch.items() if k not in ("video", "audio_features")}
    indexed.update(model.encode_frozen(batch), feature_key=[model.frozen_key] * 3)
    from_index = model.predict(indexed)
    for a, b in zip(from_pixels, from_index):
        assert a.texts == b.texts and a.invalid == b.invalid
        assert a.frame_scores == pytest.approx(b.frame_scores, abs=1e-5)
        assert [w[:2] for w in a.windows] == [w[:2] for w in b.windows]


def test_the_cli_reuses_an_index_dir(case, tmp_path, one_thread):
    from lavis.predict import main

    run_dir, video, _, queries = case
    argv = ["--run-dir", str(run_dir), "--video", str(video), "--query", queries[0], "--no-timeline"]
    for k, expected in enumerate(["computed", "disk"]):
        out = tmp_path / f"out{k}"
        assert main([*argv, "--out", str(out), "--index-dir", str(tmp_path / "index")]) == 0
        result = json.loads((out / f"{video.stem}_q0.json").read_text())
        assert result["timing"]["index"] == expected
