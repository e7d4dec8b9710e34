"""slt-average-checkpoints: parameter averages of epoch checkpoints."""

from argparse import Namespace

import torch

from fairseq_slt.tools.average_checkpoints import main as average_main


def save(path, weight, step=0, extra_key=None):
    model = {"w": torch.full((2, 2), float(weight)), "steps": torch.tensor(step)}
    if extra_key:
        model[extra_key] = torch.zeros(1)
    torch.save({"model": model, "args": Namespace(arch="x"), "last_optimizer_state": {"m": 1},
                "extra_state": {"epoch": step}}, path)


def test_last_epochs_are_averaged(tmp_path, capsys):
    for epoch in range(1, 5):
        save(tmp_path / f"checkpoint{epoch}.pt", weight=epoch, step=epoch)
    save(tmp_path / "checkpoint_best.pt", weight=100)  # not an epoch checkpoint: left out
    assert average_main(["--dir", str(tmp_path), "--last", "3", "--out", str(tmp_path / "avg.pt")]) == 0
    state = torch.load(tmp_path / "avg.pt")
    assert torch.allclose(state["model"]["w"], torch.full((2, 2), 3.0))  # (2 + 3 + 4) / 3
    assert state["model"]["steps"].item() == 4  # integer buffers: the newest checkpoint's
    assert state["last_optimizer_state"] is None and state["args"].arch == "x"
    assert state["extra_state"]["averaged_from"] == ["checkpoint4.pt", "checkpoint3.pt", "checkpoint2.pt"]
    assert not list(tmp_path.glob("avg.pt.tmp-*"))


def test_mismatched_or_missing_checkpoints_are_named(tmp_path, capsys):
    save(tmp_path / "a.pt", 1)
    save(tmp_path / "b.pt", 2, extra_key="other")
    assert average_main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--out", str(tmp_path / "avg.pt")]) == 2
    assert "b.pt holds other parameters" in capsys.readouterr().err
    assert average_main(["--dir", str(tmp_path), "--last", "5", "--out", str(tmp_path / "avg.pt")]) == 2
    assert "fewer than --last 5" in capsys.readouterr().err
    assert not (tmp_path / "avg.pt").exists()
