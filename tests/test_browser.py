"""A real browser: JupyterLab on a free localhost port, headless Chromium driven by Playwright,
the explore notebook run top to bottom, the fusion slider moved, the displayed UA changing."""

import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REPO = pathlib.Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path, tiny_run):
    import papermill

    if not os.path.exists(CHROMIUM):
        message = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    lab = tmp_path / "lab"
    lab.mkdir()
    # the explore notebook with the tiny run's parameters injected, not executed
    papermill.execute_notebook(
        str(REPO / "notebooks" / "50_explore.ipynb"),
        str(lab / "50_explore.ipynb"),
        parameters={"config": str(tiny_run["config"]), "runs": str(tiny_run["runs"]), "fold": 2},
        prepare_only=True,
    )
    # a private settings/workspace folder: no layout restored from another session, no news popup
    settings = tmp_path / "lab-settings"
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    port, token = free_port(), secrets.token_hex(16)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={lab}",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={tmp_path / 'lab-workspaces'}",
        ],
        cwd=REPO,
        stdout=open(tmp_path / "lab.log", "w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # the kernel imports this checkout's merlib
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.terminate()
        pytest.fail(f"JupyterLab did not start; see {tmp_path / 'lab.log'}")
    yield {"url": url, "token": token, "out": tmp_path}
    server.terminate()
    server.wait(timeout=30)


@pytest.mark.slow
def test_fusion_slider_in_a_real_browser(jupyterlab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{jupyterlab['url']}/lab/tree/50_explore.ipynb?token={jupyterlab['token']}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
        page.click(".jp-Notebook .jp-Cell >> nth=1")  # focus the notebook
        page.click("li.lm-MenuBar-item:has-text('Run')")  # Run ▸ Run All Cells
        page.click("li.lm-Menu-item:has(div.lm-Menu-itemLabel:text-is('Run All Cells'))")
        metrics = page.wait_for_selector(".merlib-test-ua", timeout=240_000)
        shown = {"chosen": shown_test_ua(metrics.inner_text())}
        handle = page.locator(".widget-slider .noUi-handle").first
        for key, w1 in (("Home", "0.00"), ("End", "1.00")):  # keyboard moves of the slider handle
            handle.focus()
            page.keyboard.press(key)
            page.wait_for_function(
                f"() => document.querySelector('.merlib-metrics').innerText.includes('w1 = {w1}')", timeout=60_000
            )
            shown[w1] = shown_test_ua(page.inner_text(".merlib-metrics"))
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
        page.wait_for_timeout(1000)  # let the confusion-matrix output repaint
        page.screenshot(path=str(jupyterlab["out"] / "50_explore.png"), full_page=True)
        print(f"screenshot: {jupyterlab['out'] / '50_explore.png'}; test UA shown: {shown}")
        browser.close()
    assert len(set(shown.values())) > 1, f"the displayed test UA did not change with w1: {shown}"


def shown_test_ua(text: str) -> str:
    return text.split("test UA")[-1].split("%")[0].strip()
