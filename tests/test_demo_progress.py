"""slt-demo's live progress and its last step, without training anything: the status line reads fairseq's and the
tools' real output formats, stays silent off a terminal, and the example video is a real, readable video file."""

import io
import sys

import numpy as np
import pytest

from conftest import LEARNABLE_GLOSSES
from fairseq_slt.tools import demo
from fairseq_slt.tools.progress import FORCE_VARIABLE, progress_bar

# lines as fairseq-hydra-train (simple log format) prints them
TRAIN_LINES = [
    "[2026-12-06 18:47:20,101][train_inner][INFO] - epoch 002:     10 / 40 loss=13.9, ntokens=34.9, num_updates=50\n",
    "[2026-12-06 18:47:41,706][fairseq_cli.train][INFO] - begin validation on \"dev\" subset\n",
    "[2026-12-06 18:47:42,928][dev][INFO] - epoch 002 | valid on 'dev' subset | loss 14.789 | ntokens 32.2 | "
    "uer 76.398 | wer 68.323 | raw_wer 76.398 | num_updates 80\n",
    "[2026-12-06 18:47:55,000][train_inner][INFO] - epoch 003:     20 / 40 loss=12.1, ntokens=34.9, num_updates=100\n",
]


def test_train_watch_reads_epoch_updates_and_the_last_dev_metric():
    watch = demo.TrainWatch(max_epoch=4, metric="wer")
    assert watch.fraction() is None  # nothing known before the first progress line: no made-up estimate
    for line in TRAIN_LINES:
        watch.feed(line)
    assert watch.describe() == "epoch 3/4, update 20/40, dev WER 68.323"
    assert watch.fraction() == pytest.approx((2 * 40 + 20) / (4 * 40))


def test_count_watch_reads_tqdm_bars_and_fairseq_simple_progress():
    watch = demo.CountWatch("clips")
    watch.feed("frames:  45%|####5     | 180/400 [00:03<00:04, 50.12clip/s]\r")
    assert (watch.done, watch.total, watch.describe()) == (180, 400, "180/400 clips")
    watch.feed("[fairseq_cli.generate][INFO] -      3 / 5 wps=120.5\n")
    assert watch.fraction() == pytest.approx(0.6)
    watch.feed("2026-12-06 18:47:42 | INFO | loss 14.789 | wer 68.323\n")  # no count: the last one stays
    assert watch.done == 3


def test_lines_split_at_carriage_returns_and_newlines():
    stream = io.BufferedReader(io.BytesIO(b"start\nbar 1/3\rbar 2/3\rbar 3/3\ndone"))
    assert list(demo._lines(stream)) == ["start\n", "bar 1/3\r", "bar 2/3\r", "bar 3/3\n", "done"]


def test_status_line_only_on_a_terminal(capsys):
    demo.Status(live=False).show("[demo] sign2gloss: epoch 1/2", force=True)
    assert capsys.readouterr().out == ""
    live = demo.Status(live=True)
    live.show("[demo] sign2gloss: epoch 1/2", force=True)
    live.clear()
    out = capsys.readouterr().out
    assert out.startswith("\r[demo] sign2gloss: epoch 1/2") and out.endswith("\r")


def test_tool_bars_off_in_a_pipe_unless_forced(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    monkeypatch.delenv(FORCE_VARIABLE, raising=False)
    assert progress_bar(range(3)).disable
    monkeypatch.setenv(FORCE_VARIABLE, "1")
    with progress_bar(total=3, desc="frames", unit="clip") as bar:
        bar.update(3)
    assert "3/3" in sys.stderr.getvalue()
    assert progress_bar(range(3), quiet=True).disable


def test_example_video_is_a_readable_video_of_the_first_test_clip(tmp_path):
    from slt_plugins.data.video_io import read_clip
    from fairseq_slt.tools.make_demo_data import main as make_demo_data

    corpus = tmp_path / "corpus"
    make_demo_data(["--out", str(corpus), "--train", "6", "--dev", "0", "--test", "2", "--workers", "1",
                    "--glosses", *LEARNABLE_GLOSSES])
    key, glosses, text = demo.first_test_clip(str(corpus))
    assert key in (corpus / "annotations" / "PHOENIX-2014-T.test.corpus.csv").read_text().splitlines()[1]
    assert glosses and text
    demo.write_example_video(str(corpus), key, str(tmp_path / "clip.mp4"))
    video = read_clip(str(tmp_path / "clip.mp4"), shorter_side=64)
    frames = read_clip(str(corpus / "frames" / "test" / key))
    assert video.shape == frames.shape, (video.shape, frames.shape)
    # the codec's and the up- and down-scaling's error only (another clip differs by tens of grey levels)
    assert np.abs(video.astype(float) - frames.astype(float)).mean() < 8


def test_time_left_counts_from_the_first_progress_not_from_the_start_up():
    estimate = demo.Estimate()
    assert estimate.left(100.0, None) is None
    assert estimate.left(130.0, 0.1) is None  # 30 s of imports and loading before the first report
    assert estimate.left(140.0, 0.2) == pytest.approx(80.0)  # 10 s for 10 %: 80 s for the 80 % left


def test_beside_runs_two_steps_at_once_each_on_its_threads_and_raises_a_side_failure(tmp_path, capsys):
    """The demo trains Sign2Gloss on one core while Gloss2Text trains on the other: the two steps overlap in time
    (the main one waits for a file only the side one writes), each gets its thread count, and a failing side step
    fails the demo after the main one has finished."""
    steps = demo.Demo(str(tmp_path / "work"), live=False)
    flag = tmp_path / "side-ran"
    waits_for_side = ("import os, time\n"
                      f"for _ in range(400):\n    if os.path.exists({str(flag)!r}): break\n    time.sleep(0.05)\n"
                      f"else:\n    raise SystemExit('the side step did not run meanwhile')\n"
                      "print(os.environ['OMP_NUM_THREADS'])")
    main_out, side_out = steps.beside(
        lambda: steps.run("main", [sys.executable, "-c", waits_for_side], threads=1),
        lambda: steps.run("side", [sys.executable, "-c", f"open({str(flag)!r}, 'w'); print('side done')"]))
    assert (main_out.strip(), side_out.strip()) == ("1", "side done")
    assert (tmp_path / "work" / "logs" / "side.log").read_text().strip() == "side done"
    printed = capsys.readouterr().out
    assert "[demo] main: done in" in printed and "[demo] side: done in" in printed

    with pytest.raises(demo.StepFailed, match="step 'broken' failed"):
        steps.beside(lambda: steps.run("fine", [sys.executable, "-c", "pass"]),
                     lambda: steps.run("broken", [sys.executable, "-c", "raise SystemExit(3)"]))
    assert "[demo] fine: done in" in capsys.readouterr().out  # the main step ran to its end


def test_the_demo_asks_the_bfloat16_probe_of_sign2gloss_training(monkeypatch):
    """Sign2Gloss leaves the second core to Gloss2Text only where it trains in bfloat16: the demo times the same
    products as its task's probe, on one thread as the training runs."""
    import torch

    from slt_plugins.tasks import bf16_autocast

    seen = []
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # as a 2-core machine starts: the probe must go down to one itself
    try:
        def bfloat16_faster():  # (float32 ms, bfloat16 ms), and the threads it was timed on
            seen.append(torch.get_num_threads())
            return 4.0, 1.5

        monkeypatch.setattr(bf16_autocast, "time_cpu_products", bfloat16_faster)
        assert demo.bfloat16_is_faster()
        monkeypatch.setattr(bf16_autocast, "time_cpu_products", lambda: (2.3, 4.0))
        assert not demo.bfloat16_is_faster()
    finally:
        torch.set_num_threads(threads)
    assert seen == [1]
