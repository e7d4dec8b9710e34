"""slt-serve: the page in a real browser (headless Debian Chromium through selenium) gives slt-translate's glosses and
text for an uploaded clip and one clear line for a broken file; the model's line runs one request at a time and
stops a cancelled one; uploads are checked before decoding and deleted after use; nothing is written outside the
server's temporary folder."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, free_port, run_script
from fairseq_slt.tools.serve import wait_for_page
from slt_plugins.data.lmdb_store import FrameStore
from slt_plugins.data.manifest import read_manifest
from tiny_models import tiny_bundles, tiny_models

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
INSTALL = "apt-get update && apt-get install -y chromium chromium-driver; pip install -e '.[web,test]'"


def require_browser():
    """Gradio, selenium, Debian's chromium and chromium-driver; skip without them, fail under ``CI=true`` (where
    `make test` installs them, so that their absence means the browser test did not run)."""
    missing = [name for name, found in (("gradio", _importable("gradio")), ("selenium", _importable("selenium")),
                                        (CHROMIUM, os.access(CHROMIUM, os.X_OK)),
                                        (CHROMEDRIVER, os.access(CHROMEDRIVER, os.X_OK))) if not found]
    if missing:
        message = f"browser test needs {', '.join(missing)} ({INSTALL}; `make test` does it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI=true needs it", pytrace=False)
        pytest.skip(message)


def _importable(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


def write_video(frames, path, rate=25):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, tiny_trained):
    return tiny_bundles(tmp_path_factory, tiny_trained)


@pytest.fixture(scope="module")
def clips(tmp_path_factory, tiny_trained):
    """Two test clips of the tiny corpus as mp4 (the upload, and the example the page offers), and a broken file."""
    data = tiny_models(tmp_path_factory, tiny_trained)["data"]
    store, rows = FrameStore(str(data / "frames.lmdb")), read_manifest(data / "test.tsv")
    root = tmp_path_factory.mktemp("clips")
    (root / "examples").mkdir()
    rng = np.random.default_rng(0)
    broken, large = root / "broken.mp4", root / "large.mp4"
    broken.write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    large.write_bytes(rng.integers(0, 256, int(1.5 * 2 ** 20), dtype=np.uint8).tobytes())  # over the server's 1 MB
    return {"upload": write_video(store.frames(rows[0].id), root / "clip.mp4"),
            "example": write_video(store.frames(rows[1].id), root / "examples" / "example.mp4"),
            "broken": broken, "large": large, "frames": store.frames(rows[0].id)}


# --- the page in a browser -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(bundles, clips, tmp_path_factory):
    """slt-serve on both bundles, started in an empty folder with an empty HOME and its own TMPDIR, so that the
    test sees everything it writes; stopped with SIGTERM, as a service manager stops it."""
    require_browser()
    root = tmp_path_factory.mktemp("serve")
    places = {name: root / name for name in ("cwd", "home", "tmp")}
    for place in places.values():
        place.mkdir()
    port = free_port()
    env = dict(os.environ, HOME=str(places["home"]), TMPDIR=str(places["tmp"]), PYTHONPATH=REPO)
    env.pop("MPLCONFIGDIR", None)
    log = open(root / "serve.log", "w")
    # `python -m fairseq_slt.tools.serve` is what the slt-serve console script runs (this tree's, whatever the venv installed)
    proc = subprocess.Popen([sys.executable, "-m", "fairseq_slt.tools.serve", "--model", bundles["s2t"], "--model", bundles["s2g"],
                             "--examples", clips["example"].parent, "--port", str(port), "--max-mb", "1"],
                            cwd=places["cwd"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        if not wait_for_page(url, proc):
            raise AssertionError(f"slt-serve did not start:\n{(root / 'serve.log').read_text()[-3000:]}")
        yield {"url": url, "proc": proc, "log": root / "serve.log", **places}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            log.close()


@pytest.fixture(scope="module")
def browser(server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def upload(driver, url, path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, 60)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#video input[type=file]"))[0].send_keys(str(path))
    return wait


def translate_on_page(driver, url, path, until):
    """Open the page, upload ``path``, press Translate; the message once ``until`` is in it."""
    from selenium.webdriver.common.by import By

    wait = upload(driver, url, path)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#video video"))  # uploaded: the player shows it
    driver.find_element(By.ID, "translate").click()
    return wait.until(lambda d: (lambda text: text if until in text else None)(d.find_element(By.ID, "message").text))


def test_page_answers_as_slt_translate_and_says_what_is_wrong_with_a_broken_file(server, browser, bundles, clips,
                                                                                 tmp_path):
    from selenium.webdriver.common.by import By

    # a broken file first: one line on the page, and the server goes on serving
    message = translate_on_page(browser, server["url"], clips["broken"], "Cannot translate")
    assert "broken.mp4 is not a video" in message, message
    assert server["proc"].poll() is None
    # a file over --max-mb: Gradio's own line, before the upload is sent
    wait = upload(browser, server["url"], clips["large"])
    toast = wait.until(lambda d: (lambda t: t if "exceed the maximum allowed size" in t else None)(
        d.find_element(By.TAG_NAME, "body").text))
    assert "large.mp4" in toast, toast

    message = translate_on_page(browser, server["url"], clips["upload"], "Done")
    page = {name: browser.find_element(By.CSS_SELECTOR, f"#{name} textarea").get_attribute("value")
            for name in ("glosses", "text")}
    cli = json.loads(run_script("slt-translate", "--model", bundles["s2t"], clips["upload"], "--json").stdout)
    assert page == {"glosses": cli["glosses"], "text": cli["text"]}, (page, cli)
    assert "clip.mp4 (s2t, sign2text)" in message
    assert " s to read the video" in browser.find_element(By.ID, "timing").text
    assert browser.find_elements(By.CSS_SELECTOR, "#alignment img"), "no alignment picture on the page"
    assert browser.find_element(By.ID, "model").is_displayed()  # two models: the chooser shows
    screenshot = tmp_path / "serve.png"
    browser.save_screenshot(str(screenshot))
    print(f"screenshot of the page: {screenshot}")

    # the uploads were deleted after use; the example offered on the page is kept
    kept = [os.path.relpath(os.path.join(d, f), server["tmp"]) for d, _, files in os.walk(server["tmp"])
            for f in files if f.endswith(".mp4")]
    assert not [f for f in kept if os.path.basename(f) in ("clip.mp4", "broken.mp4")], kept


def test_server_writes_nothing_outside_its_temporary_folder_and_deletes_it_at_exit(server):
    """Runs after the page test (same module): stop the server, then look at every place it could have written."""
    proc = server["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, server["log"].read_text()[-3000:]
    assert os.listdir(server["cwd"]) == [] and os.listdir(server["home"]) == [], (
        os.listdir(server["cwd"]), os.listdir(server["home"]))
    assert os.listdir(server["tmp"]) == [], os.listdir(server["tmp"])  # its temporary folder is gone
    log = server["log"].read_text()
    assert "Traceback" not in log, log[-3000:]


def test_serve_binds_to_this_machine_unless_told_otherwise():
    from fairseq_slt.tools.serve import parse_args

    assert parse_args(["--model", "b"]).host == "127.0.0.1"


# --- checks before decoding (no browser) ---------------------------------------------------------------------------

def refusal(path, **limits):
    """check_upload's one line for ``path`` under ``limits``."""
    from fairseq_slt.tools.serving import UploadError, UploadLimits, check_upload

    with pytest.raises(UploadError) as e:
        check_upload(str(path), os.path.basename(path), UploadLimits(**limits))
    return str(e.value)


def test_an_upload_is_refused_with_one_line_before_decoding(clips, tmp_path):
    from fairseq_slt.tools.serving import UploadLimits, check_upload

    assert 1.5 < check_upload(str(clips["upload"]), "clip.mp4", UploadLimits()) < 2  # 44 frames at 25 fps
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    one = write_video(clips["frames"][:1], tmp_path / "one.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    cases = [(clips["broken"], {}, "broken.mp4 is not a video that FFmpeg can read"),
             (text, {}, "notes.mp4 is not a video"),
             (empty, {}, "empty.mp4 is empty (0 bytes)"),
             (tmp_path / "gone.mp4", {}, "gone.mp4 is no longer on the server"),
             (one, {}, "one.mp4 has 1 frame; the model needs at least 4"),
             (clips["upload"], {"max_mb": 0.001}, "clip.mp4 is 0.0 MB, over the limit of 0.001 MB"),
             (clips["upload"], {"max_seconds": 1}, "clip.mp4 is longer than the limit of 1 s")]
    for path, limits, expected in cases:
        message = refusal(path, **limits)
        assert expected in message and "\n" not in message and str(tmp_path) not in message, message


# --- the model's line (no browser) ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(bundles, tmp_path_factory):
    from slt_plugins.translator import SignTranslator
    from fairseq_slt.tools.serving import ServedModel, UploadLimits

    translator = SignTranslator.from_pretrained(str(bundles["s2g"]), device="cpu")
    model = ServedModel("s2g", translator, str(tmp_path_factory.mktemp("served")), UploadLimits())
    yield model
    model.close()


def _copy(path, folder, name):
    folder.mkdir(exist_ok=True)
    return str(shutil.copy(path, folder / name))


def test_the_line_answers_one_at_a_time_as_slt_translate_and_deletes_uploads(served, clips, tmp_path, monkeypatch):
    from fairseq_slt.tools.serving import Uploads, result_of

    expected = served.translator.run([str(clips["upload"])])[0]
    uploads = [_copy(clips["upload"], tmp_path / f"u{k}", "clip.mp4") for k in range(2)]
    uploads.append(uploads[1])  # two users who upload the same bytes share Gradio's file: kept for the second
    inside, most, run = [0], [0], served.translator.run
    uploads_in_use = Uploads(str(tmp_path))

    def counted(*args, **kwargs):  # how many requests are in the model at once
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.05)  # long enough for a second worker, were there one, to come in
        try:
            return run(*args, **kwargs)
        finally:
            inside[0] -= 1

    monkeypatch.setattr(served.translator, "run", counted)
    jobs = [served.submit(path, "clip.mp4", uploads_in_use.hold(path)) for path in uploads]
    assert [job.ahead() for job in jobs][1:] in ([1, 2], [0, 1], [0, 0])  # in line, in order
    answers = [result_of(job) for job in jobs]
    assert [a.glosses for a in answers] == [expected.glosses] * 3 and most[0] == 1
    assert all(os.path.isfile(a.picture) for a in answers)
    assert not any(os.path.exists(path) for path in uploads)  # deleted after use


def test_a_cancelled_request_stops_waiting_or_running(served, clips, tmp_path):
    import threading

    from fairseq_slt.tools.serving import Cancelled, Uploads, result_of

    calls, release, holding, in_use = [0], threading.Event(), [], Uploads(str(tmp_path))

    def hold_and_count(module, inputs):
        calls[0] += 1
        if holding and calls[0] == 1:
            release.wait(30)  # the first request holds the line while the second waits

    hooks = [m.register_forward_pre_hook(hold_and_count) for m in served.translator.model.modules()]
    try:
        served.translator.run([str(clips["upload"])])
        full, calls[0] = calls[0], 0  # module calls of a whole request
        holding_path, waiting_path = (_copy(clips["upload"], tmp_path / n, f"{n}.mp4") for n in "ab")
        holding.append(served.submit(holding_path, "a.mp4", in_use.hold(holding_path)))
        waiting = served.submit(waiting_path, "b.mp4", in_use.hold(waiting_path))
        assert waiting.ahead() == 1
        waiting.cancel()
        release.set()
        with pytest.raises(Cancelled):
            result_of(waiting)
        result_of(holding[0])
        assert calls[0] == full and not os.path.exists(waiting_path)  # the cancelled one never ran

        # cancelled inside the model (by its first module call, in the line's thread): it stops at the next module
        holding.clear()
        calls[0] = 0
        hooks.append(served.translator.model.register_forward_pre_hook(lambda m, i: served._running.cancel()))
        running_path = _copy(clips["upload"], tmp_path / "c", "c.mp4")
        with pytest.raises(Cancelled):
            result_of(served.submit(running_path, "c.mp4", in_use.hold(running_path)))
        assert calls[0] <= 2 < full and not os.path.exists(running_path), (calls[0], full)
    finally:
        release.set()
        for hook in hooks:
            hook.remove()
