"""``benchmarks/gpu_check.py``, the driver of ``run_scripts/gpu_check.sh``, on the CPU: choosing
parts, skipping what cannot run (no CUDA, a missing module, a failed prerequisite, no time left),
time limits that kill a hung part with its children, reading results, and the summary.

The parts here are fast fakes (small Python commands); the real ones need a GPU.
"""

import json
import os
import sys
import time
from pathlib import Path

import pytest

from benchmarks import gpu_check
from benchmarks.gpu_check_parts import Part, default_parts, read_pytest

PY = sys.executable
ON_GPU = {
    "cuda": True,
    "card": "Fake H100",
    "python": "3.12.0",
    "modules": {"omegaconf": "2.4", "av": "14", "pytest": "9"},
}


def fake(name: str, code: str, timeout_s: float = 30, **kw) -> Part:
    return Part(name, ("{python}", "-c", code), timeout_s, **kw)


RESULT = (
    'import json; print("log line"); print(json.dumps({"samples_per_s": 12.5, "unit": "training samples", '
    '"peak_memory_gib": 40.1, "breakdown_s": {"forward": 0.2}}))'
)


def test_the_default_plan_covers_every_part_in_the_issue():
    parts = {p.name: p for p in default_parts()}
    assert list(parts)[:3] == ["train_live", "train_cached", "generate"]  # most informative first
    assert {"gpu_tests", "torchrun_single", "torchrun_fsdp", "torchrun_deepspeed", "train_compile"} <= set(parts)
    live = " ".join(parts["train_live"].argv)
    assert "--preset pretrain_flant5xl" in live and "--cached-features" in " ".join(parts["train_cached"].argv)
    assert "--compile inductor" in " ".join(parts["train_compile"].argv)
    assert "--beams 5 --max-new-tokens 50" in " ".join(parts["generate"].argv)
    assert "deepspeed" in parts["torchrun_deepspeed"].needs_modules
    runs = {p.run_dir for p in parts.values() if p.reads == "run_dir"}
    assert len(runs) == 3  # a fresh output_dir per torchrun run
    assert all(p.after == "synthetic_data" for p in parts.values() if p.reads == "run_dir")


def test_select_names_unknown_parts():
    parts = default_parts()
    assert [p.name for p in gpu_check.select(parts, "generate,train_live", None)] == ["train_live", "generate"]
    assert "train_compile" not in [p.name for p in gpu_check.select(parts, None, "train_compile")]
    with pytest.raises(ValueError, match=r"unknown part\(s\) \['trian_live'\]; valid: \['train_live'"):
        gpu_check.select(parts, "trian_live", None)


def test_a_part_that_succeeds_gives_its_figures(tmp_path):
    out = gpu_check.run_part(fake("train_live", RESULT), PY, tmp_path, 30, tmp_path / "logs")
    assert out["status"] == "ok" and out["result"]["samples_per_s"] == 12.5
    assert out["figures"] == {
        "samples_per_s": 12.5,
        "unit": "training samples",
        "peak_memory_gib": 40.1,
        "breakdown_s": {"forward": 0.2},
    }
    assert "log line" in (tmp_path / "logs" / "train_live.log").read_text()


def test_python_on_path_is_the_checked_interpreter(tmp_path, monkeypatch):
    # launch.sh runs plain `python`. Here the checked interpreter is "python3" in a folder without
    # a `python`, and PATH holds only the system's folders: `python` must still be it.
    folder = tmp_path / "node"
    folder.mkdir()
    (folder / "python3").write_text(f'#!/bin/sh\nexec {PY} "$@"\n')
    (folder / "python3").chmod(0o755)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    code = 'import json, sys; print(json.dumps({"samples_per_s": 1.0, "prefix": sys.prefix}))'
    part = Part("torchrun_single", ("sh", "-c", f"python -c '{code}'"), 30)
    out = gpu_check.run_part(part, str(folder / "python3"), tmp_path, 30, None)
    assert out["status"] == "ok", out
    assert out["result"]["prefix"] == sys.prefix  # this venv, not the system's Python


def test_a_failing_part_reports_its_exit_code_and_last_words(tmp_path):
    code = 'import sys; print("building"); sys.exit("RuntimeError: CUDA error: out of memory")'
    out = gpu_check.run_part(fake("generate", code), PY, tmp_path, 30, None)
    assert out["status"] == "failed"
    assert out["reason"].startswith("exit code 1:") and "out of memory" in out["reason"]


def test_a_part_without_a_result_line_fails(tmp_path):
    out = gpu_check.run_part(fake("generate", 'print("no json here")'), PY, tmp_path, 30, None)
    assert out["status"] == "failed" and "could not be read" in out["reason"]


def test_a_hung_part_is_killed_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
        f"open({str(pid_file)!r}, 'w').write(str(child.pid)); print('started', flush=True); time.sleep(120)"
    )
    start = time.monotonic()
    out = gpu_check.run_part(fake("torchrun_single", code), PY, tmp_path, 3, None)
    assert out["status"] == "timeout" and "within 3 s" in out["reason"]
    assert time.monotonic() - start < 30
    child = int(pid_file.read_text())
    for _ in range(50):  # the kill is asynchronous; the child goes within moments
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        os.kill(child, 9)
        pytest.fail("the hung part's child process survived the timeout")


def test_a_training_run_is_read_from_its_metrics(tmp_path):
    code = (
        "import json, pathlib; d = pathlib.Path({work!r}) / 'runs' / 'single'; d.mkdir(parents=True); "
        "(d / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\\n' for r in ["
        "{'type': 'train', 'step': 1, 'loss': 2.5, 'samples_per_s': 7.0}, "
        "{'type': 'train', 'step': 2, 'loss': 2.25, 'samples_per_s': 8.0}]))"
    ).replace("{work!r}", repr(str(tmp_path)))
    part = fake("torchrun_single", code, reads="run_dir", run_dir="{work}/runs/single")
    out = gpu_check.run_part(part, PY, tmp_path, 30, None)
    assert out["status"] == "ok"
    assert out["result"] == {"steps": 2, "losses": [2.5, 2.25], "samples_per_s": 8.0}
    silent = gpu_check.run_part(
        fake("torchrun_fsdp", "pass", reads="run_dir", run_dir="{work}/nothing"), PY, tmp_path, 30, None
    )
    assert silent["status"] == "failed" and "metrics.jsonl was not written" in silent["reason"]


def test_pytest_summary_is_counted():
    assert read_pytest("...\n1 passed, 370 deselected in 41.20s\n") == {"passed": 1, "deselected": 370}
    assert read_pytest("= 1 failed, 1 error, 2 skipped in 3s =") == {"failed": 1, "error": 1, "skipped": 2}
    with pytest.raises(ValueError):
        read_pytest("collected nothing")


def test_skips_name_their_reason(tmp_path):
    parts = [
        fake("train_live", RESULT),
        fake("needs_deepspeed", RESULT, needs_modules=("deepspeed",)),
        fake("synthetic_data", "import sys; sys.exit(1)", reads="none", needs_cuda=False),
        fake("torchrun_single", RESULT, after="synthetic_data"),
    ]
    summary = gpu_check.check(parts, PY, tmp_path, 300, found=ON_GPU)
    status = {n: r["status"] for n, r in summary["parts"].items()}
    assert status == {
        "train_live": "ok",
        "needs_deepspeed": "skipped",
        "synthetic_data": "failed",
        "torchrun_single": "skipped",
    }
    reasons = {s["part"]: s["reason"] for s in summary["skipped"]}
    assert (
        reasons["needs_deepspeed"].startswith("not importable: deepspeed") and "--wheels" in reasons["needs_deepspeed"]
    )
    assert reasons["torchrun_single"] == "needs synthetic_data, which failed"
    assert [f["part"] for f in summary["failures"]] == ["synthetic_data"]
    assert summary["card"] == "Fake H100" and summary["figures"]["train_live"]["samples_per_s"] == 12.5


def test_without_cuda_only_cpu_parts_run(tmp_path):
    parts = [fake("train_live", RESULT), fake("synthetic_data", "pass", reads="none", needs_cuda=False)]
    summary = gpu_check.check(parts, PY, tmp_path, 300, found={**ON_GPU, "cuda": False, "card": None})
    assert summary["skipped"] == [{"part": "train_live", "reason": "no CUDA device"}]
    assert summary["parts"]["synthetic_data"]["status"] == "ok" and summary["failures"] == []


def test_the_budget_cuts_the_last_parts(tmp_path, monkeypatch):
    clock = [1000.0]  # each part "takes" 15 s of a fake clock
    monkeypatch.setattr(gpu_check.time, "monotonic", lambda: clock[0])
    calls = []

    def runner(part, python, work, timeout_s, log_dir):
        calls.append((part.name, timeout_s))
        clock[0] += 15
        return {"status": "ok", "seconds": 15}

    parts = [fake("a", "pass", timeout_s=100), fake("b", "pass", timeout_s=100), fake("c", "pass", timeout_s=100)]
    summary = gpu_check.check(parts, PY, tmp_path, 40, found=ON_GPU, runner=runner)
    # "a" may use the whole 40 s, "b" the 25 s left; 10 s are less than a part needs (MIN_PART_S).
    assert calls == [("a", 40), ("b", 25)]
    assert summary["skipped"] == [{"part": "c", "reason": "out of the time budget (10 s left)"}]


def test_main_writes_the_summary_to_out(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "default_parts", lambda: [fake("train_live", RESULT), fake("generate", "1/0")])
    monkeypatch.setattr(gpu_check, "probe", lambda python: ON_GPU)
    monkeypatch.setenv("OUT", str(tmp_path / "out"))
    assert gpu_check.main(["--work-dir", str(tmp_path / "work")]) == 1  # generate failed
    printed = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / "out" / "gpu_check.json").read_text()) == printed
    assert printed["failures"][0]["part"] == "generate" and "ZeroDivisionError" in printed["failures"][0]["reason"]
    assert (tmp_path / "out" / "gpu_check_logs" / "generate.log").is_file()
    assert gpu_check.main(["--work-dir", str(tmp_path / "work"), "--skip", "generate"]) == 0


def test_main_refuses_bad_arguments(capsys):
    for args, message in ((["--parts", "nope"], "unknown part(s) ['nope']"), (["--total-s", "0"], "must be positive")):
        with pytest.raises(SystemExit) as exit_info:
            gpu_check.main(args)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_probe_of_this_interpreter():
    found = gpu_check.probe(PY)
    assert found["modules"]["torch"] and found["modules"]["omegaconf"]  # antlr-free or with its runtime
    assert found["python"] == ".".join(map(str, sys.version_info[:3]))
    import torch

    assert found["cuda"] == torch.cuda.is_available()


def test_the_torchrun_parts_train_the_full_model_at_the_published_settings():
    from benchmarks.gpu_check_parts import TORCHRUN_CONFIG
    from lavis.common.config import load_experiment

    cfg = load_experiment(TORCHRUN_CONFIG)
    published = load_experiment("configs/experiments/charades_sta/sms.yaml")
    assert cfg.model.model_type == "pretrain_flant5xl" and cfg.model.tokenizer.source == "builtin"
    assert (cfg.model.fusion, cfg.model.lora, cfg.model.frozen_dtype) == (
        published.model.fusion,
        published.model.lora,
        published.model.frozen_dtype,
    )
    data, published_data = cfg.datasets["synthetic_av"], published.datasets["charades_sta"]
    assert (data.num_frames, data.audio, data.vis_processor) == (
        published_data.num_frames,
        published_data.audio,
        published_data.vis_processor,
    )
    assert (cfg.run.amp, cfg.run.batch_size_train) == ("bf16", 8)
    assert cfg.run.valid_splits == [] and cfg.run.test_splits == []  # a few steps of random weights


def test_a_torchrun_part_trains_through_the_launcher(tmp_path):
    # The real part type (launch.sh -> torchrun -> lavis.train -> metrics.jsonl) at the tiny size.
    from helpers.tiny_run import EXPERIMENT, SPEC

    from benchmarks.gpu_check_parts import TORCHRUN_STEPS, torchrun_part
    from mr_data.synthetic import generate_dataset

    generate_dataset(tmp_path / "data", num_videos=8, seed=1, spec=SPEC, workers=1)
    tiny = (
        "datasets.synthetic_av.num_frames=4",
        "run.batch_size_train=2",
        "run.max_minutes=null",
        "run.num_workers=0",
        "run.valid_splits=[]",
        "run.test_splits=[]",
        "run.torch_threads=1",
        "run.log_freq=1",
    )
    part = torchrun_part("ddp", 180, tiny, config=EXPERIMENT)
    out = gpu_check.run_part(part, PY, tmp_path, 180, tmp_path / "logs")
    assert out["status"] == "ok", out.get("reason")
    assert out["result"]["steps"] == TORCHRUN_STEPS and len(out["result"]["losses"]) == TORCHRUN_STEPS
    assert "--standalone --nnodes=1 --nproc_per_node=1" in (tmp_path / "logs" / "torchrun_ddp.log").read_text()
