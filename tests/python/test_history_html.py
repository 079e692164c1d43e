"""--history under concurrent writers, `flowlik history`, and the HTML report rendered in a real headless
browser."""
import json
import os
import shutil
import sqlite3
import subprocess

import numpy as np
import pytest

from conftest import BIN, run_flowlik


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(4).normal(size=(12, 2, 3)))
    return path


def test_concurrent_writers_lose_no_rows(fixtures, data, tmp_path):
    db = tmp_path / "history.db"
    writers = 6
    procs = [subprocess.Popen([str(BIN), "score", str(fixtures / "gaussian.pt"), "--data", str(data),
                               "--solver", "euler", "--steps", "4", "--seed", str(i), "--history", str(db), "-q"],
                              stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
             for i in range(writers)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = con.execute("SELECT options FROM (SELECT json_extract(report, '$.options.seed') AS options "
                           "FROM runs)").fetchall()
    assert sorted(r[0] for r in rows) == list(range(writers))
    listed = json.loads(run_flowlik("history", db, "--json").stdout)
    assert len(listed) == writers and all(r["samples_ok"] == 12 for r in listed)


def test_history_filters_by_model(fixtures, data, tmp_path):
    db = tmp_path / "h.db"
    for model in ("gaussian.pt", "gaussian_b.pt", "gaussian.pt"):
        run_flowlik("score", fixtures / model, "--data", data, "--solver", "euler", "--steps", "4",
                    "--history", db, "-q")
    only = json.loads(run_flowlik("history", db, "--json", "--model", fixtures / "gaussian_b.pt").stdout)
    assert len(only) == 1 and only[0]["model"].endswith("gaussian_b.pt")
    text = run_flowlik("history", db).stdout
    assert text.count("gaussian") == 3


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(chromium() is None, reason="no headless browser: install Debian's chromium (scripts/setup does)")
def test_html_report_renders_in_a_headless_browser(fixtures, data, tmp_path):
    db, html = tmp_path / "h.db", tmp_path / "report.html"
    run_flowlik("score", fixtures / "gaussian.pt", "--data", data, "--history", db, "-q")
    run_flowlik("compare", fixtures / "gaussian.pt", fixtures / "gaussian_b.pt", "--data", data, "--history", db,
                "--html", html, "-q")
    browser = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*browser, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The browser parsed the page into the plots: two per-model histograms, the paired difference and the
    # trend over the three history rows.
    assert dom.stdout.count('class="histogram"') == 2
    assert dom.stdout.count('class="paired"') == 1
    assert dom.stdout.count('class="trend"') == 1 and dom.stdout.count("<circle") == 3
    png = tmp_path / "report.png"
    shot = subprocess.run([*browser, f"--screenshot={png}", "--window-size=900,1400", html.as_uri()],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert shot.returncode == 0 and png.stat().st_size > 10000, shot.stderr[-2000:]
