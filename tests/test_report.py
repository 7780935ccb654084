"""`gradtune report`: one offline HTML page of runs and sweeps, checked in headless Chromium; HParams."""

import os
import shutil
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import TINY_CONFIG
from tensorboardX.proto import event_pb2

from gradtune.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "results" / "sweeps" / "lt-en-label-smoothing"  # committed: table and plots (its trials live in runs/)
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
DEMO_RUNS = ("held", "learning-rate", "b1", "learning-rate-b1", "all-label-smoothing")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--quick", "--quiet", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def report(demo):
    out = demo / "with-sweep.html"
    assert main(["report", *(str(demo / run) for run in DEMO_RUNS), str(SWEEP), "--out", str(out)]) == 0
    return out


def external_references(page: str) -> list[str]:
    """Every src or href of the page's tags that points off the page."""
    found = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(v for k, v in attrs if k in ("src", "href") and v and not v.startswith(("data:", "#")))

    Tags().feed(page)
    return found


@pytest.mark.slow
def test_the_demo_writes_its_five_runs_and_their_report_and_keeps_finished_runs(demo, capsys):
    assert all((demo / run / "summary.json").is_file() for run in DEMO_RUNS)
    page = (demo / "report.html").read_text(encoding="utf-8")
    assert all(f"<td>{run}</td>" in page for run in DEMO_RUNS)
    assert main(["demo", "--quick", "--quiet", "--out", str(demo)]) == 0
    assert capsys.readouterr().out.count("done already") == 5


@pytest.mark.slow
def test_the_report_is_one_offline_page_with_the_runs_table_figures_and_the_sweep(report):
    page = report.read_text(encoding="utf-8")
    assert not external_references(page)  # plotly.js, styles and images inline: nothing fetched
    assert "<th>guidance.enabled</th>" in page and "<th>guidance.guided</th>" in page  # the keys that differ
    assert "learning_rate 1 →" in page and "label_smoothing 0.1 →" in page  # guided values' start → end
    for title in ("Losses", "Effective learning rate", "Guided b1", "Guided label_smoothing", "Guided eps"):
        assert title in page, title
    assert "Sweep lt-en-label-smoothing" in page and page.count('<img alt="') == 3
    assert "label_smoothing=0.025" in page  # the sweep's best trial


@pytest.mark.slow
def test_data_weights_are_drawn_over_time_and_as_a_histogram(tmp_path):
    run = tmp_path / "weights"
    assert main(["train", "--config", str(TINY_CONFIG), "--quiet", "--steps", "3", "--set", "eval_every=3",
                 "--set", "bleu_examples=2", "--set", "guided=bucket_weights,example_weights",
                 "--set", "num_buckets=3", "--run-dir", str(run)]) == 0  # fmt: skip
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Guided bucket_weights (one line per row)" in page and "Learned example weights" in page


def test_a_folder_that_is_not_a_run_nor_a_sweep_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 1
    assert "is neither a run nor a sweep" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def _events(folder: Path) -> list:
    events = []
    for path in folder.glob("events.out.tfevents.*"):
        data = path.read_bytes()
        while data:
            (length,) = struct.unpack("<Q", data[:8])
            events.append(event_pb2.Event.FromString(data[12 : 12 + length]))
            data = data[12 + length + 4 :]
    return events


@pytest.mark.slow
def test_each_run_logs_its_config_and_final_scores_as_tensorboard_hparams(demo):
    events = _events(demo / "learning-rate-b1" / "tensorboard" / "hparams")
    tags = {v.tag for e in events for v in e.summary.value}
    assert {"_hparams_/experiment", "_hparams_/session_start_info", "final/dev_loss"} <= tags
    start = next(v for e in events for v in e.summary.value if v.tag == "_hparams_/session_start_info")
    content = start.metadata.plugin_data.content
    assert b"guidance.guided" in content and b"optim.learning_rate" in content


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None, reason="no Chromium here: apt-get install chromium chromium-driver"
)
def test_the_report_draws_every_figure_in_headless_chromium_without_console_errors(report, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.get(report.as_uri())
        count = driver.execute_script("return document.querySelectorAll('.figure .js-plotly-plot').length")
        assert count >= 5
        drawn = ("return [...document.querySelectorAll('.figure .js-plotly-plot')]"
                 ".every(f => f.querySelector('svg.main-svg'))")  # fmt: skip
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(drawn))
        images = driver.execute_script("return [...document.images].map(i => i.naturalWidth)")
        assert len(images) == 3 and all(w > 0 for w in images)
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        driver.save_screenshot(str(tmp_path / "report.png"))
        assert (tmp_path / "report.png").stat().st_size > 10_000
    finally:
        driver.quit()


@pytest.mark.slow
def test_the_notebook_runs_every_cell_at_quick_settings(demo, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(ROOT / "notebooks" / "demo.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # stored clean
    # The demo fixture's runs are there already: the notebook's demo cell finds them done.
    os.environ.update(GRADTUNE_NOTEBOOK_QUICK="1", GRADTUNE_NOTEBOOK_OUT=str(demo))
    try:
        NotebookClient(
            notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
        ).execute()
    finally:
        for name in ("GRADTUNE_NOTEBOOK_QUICK", "GRADTUNE_NOTEBOOK_OUT"):
            os.environ.pop(name, None)
    text = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "done already" in text and "dev loss" in text and "→" in text
    assert any(
        "application/vnd.plotly.v1+json" in o.get("data", {}) for c in notebook.cells for o in c.get("outputs", [])
    )
