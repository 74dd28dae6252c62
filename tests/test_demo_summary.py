import json
import shutil

from omegaconf import OmegaConf

from lavis.demo_summary import main


def test_the_summary_scores_the_guess_and_names_the_model(tiny_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run.run_dir, run_dir)
    assert main(["--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((run_dir / "metrics_test.json").read_text())
    guess = metrics["baselines"]["duration_only_guess"]
    assert set(guess["brief"]) >= {"R1@0.5", "mIoU"} and set(guess["by_kind"]) <= {"visual", "audio", "audio_visual"}
    assert "SMS (gca), this run" in out and "duration-only guess" in out
    assert (run_dir / "demo.png").stat().st_size > 10_000

    cfg = OmegaConf.load(run_dir / "config.yaml")
    # The video-only ablation's config (fusion none has no keys of its own) is labelled as such.
    cfg.model.fusion = {"name": "none", "position": cfg.model.fusion.position}
    OmegaConf.save(cfg, run_dir / "config.yaml")
    assert main(["--run-dir", str(run_dir)]) == 0
    assert "video only, this run" in capsys.readouterr().out


def test_a_run_without_test_metrics_is_a_clear_error(tmp_path, capsys):
    assert main(["--run-dir", str(tmp_path)]) == 2  # a user error, as in every entry point
    assert "metrics_test.json not found" in capsys.readouterr().err


def test_the_step_where_the_lm_loss_leaves_the_duration_prior():
    from lavis.demo_summary import training_summary

    records = [
        {"step": 10, "loss": 1.2, "loss_lm": 0.9},
        {"step": 20, "loss": 0.7, "loss_lm": 0.39},
        {"step": 30, "loss": 0.5, "loss_lm": 0.45},
    ]
    assert training_summary(records) == {"steps": 30, "lm_loss_below_prior_at_step": 20}
    # A model without named parts: its loss is the LM loss.
    assert training_summary([{"step": 10, "loss": 0.5}])["lm_loss_below_prior_at_step"] is None
