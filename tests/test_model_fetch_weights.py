"""``python -m lavis.fetch_weights`` fails fast, with the list of files, when offline."""

import time

from lavis.fetch_weights import SOURCES, main


def test_offline_fails_fast_with_the_list(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    start = time.monotonic()
    assert main(["blip2-flan-t5-xl", "clap-htsat-fused", "--root", str(tmp_path)]) == 1
    assert time.monotonic() - start < 10
    err = capsys.readouterr().err
    assert "no internet" in err and "Salesforce/blip2-flan-t5-xl" in err and "laion/clap-htsat-fused" in err
    assert str(tmp_path / "blip2-flan-t5-xl") in err and "model.weights.clap_dir" in err
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_list_and_unknown_names(tmp_path, capsys):
    assert main(["--list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SOURCES)
    assert main(["nope"]) == 2
    assert "valid" in capsys.readouterr().err
