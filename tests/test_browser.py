"""A real browser, as a user works: JupyterLab started the way `make lab` starts it (from the
repository root, kernels in notebooks/), headless Chromium driven by Playwright, every committed
notebook opened unmodified and run with Run All in order (00 → 50), each saved and checked for
error outputs; then the fusion slider moved and a sentence tried in the Try-it section.

The checkout is copied to a temporary folder whose configs/demo.yaml is a tiny plan on a tiny
corpus, so that the notebooks' default parameters (configs/demo.yaml, runs/, fold 1) work on it
in a minute or two instead of the demo's ten."""

import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REPO = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = ["00_data", "10_speaker_pretrain", "20_speech_fold", "30_text_fold", "40_fusion", "50_explore"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copy_checkout(target: pathlib.Path) -> pathlib.Path:
    """The tracked files of this checkout (notebooks as committed), without runs or caches."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture
def lab(tmp_path, tiny_demo_corpus):
    from merlib.data import demo, iemocap

    if not os.path.exists(CHROMIUM):
        message = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    checkout = copy_checkout(tmp_path / "merlib")
    corpus, _ = tiny_demo_corpus
    speakers = tmp_path / "speakers"
    demo.generate_demo_speakers(speakers, demo.DemoSpeakersConfig(speakers=6, utterances_per_speaker=4))
    manifest = iemocap.write_prepared(iemocap.prepare_iemocap(corpus, corpus="demo"), tmp_path / "manifest", corpus)
    (checkout / "configs" / "demo.yaml").write_text(f"""# a tiny stand-in for the demo plan (tests/test_browser.py)
base: paper.yaml
name: demo
data: {{corpus: demo, root: {corpus}, manifest: {manifest}}}
features: {{n_mels: 32, normalization: global}}
augment: {{copies: 1}}
pretrain:
  corpus_root: {speakers}
  augment_copies: 0
  stage: {{epochs: 1, chunk_frames: [60], batch_size: 8, lr: 0.02, backbone_lr: 0.02}}
speech:
  model: {{m_channels: 4, embed_dim: 32}}
  linear_probe: {{epochs: 2, batch_size: 8}}
  fine_tune: {{epochs: 1, chunk_frames: [50, 80], batch_size: 8, lr: 0.01, backbone_lr: 0.005}}
text: {{model: minilm-offline, epochs: 1, batch_size: 16, lr: 1.0e-4}}
systems:
  - {{name: speech, modality: speech}}
  - {{name: text, modality: text}}
fusions:
  - {{name: fusion_weighted, method: weighted, inputs: [speech_ft, text]}}
  - {{name: fusion_znorm, method: znorm, inputs: [speech_ft, text]}}
""")
    # a private settings/workspace folder: no layout restored from another session, no news popup
    settings = tmp_path / "lab-settings"
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    port, token = free_port(), secrets.token_hex(16)
    # as `make lab`: from the repository root, --notebook-dir=., PYTHONPATH = the checkout
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--notebook-dir=.", "--no-browser", "--allow-root", f"--port={port}",
         "--ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--LabApp.user_settings_dir={settings}",
         f"--LabApp.workspaces_dir={tmp_path / 'lab-workspaces'}"],
        cwd=checkout, stdout=open(tmp_path / "lab.log", "w"), stderr=subprocess.STDOUT,
        # faulthandler: a stuck kernel told to abort prints every thread's stack into lab.log
        env={**os.environ, "PYTHONPATH": str(checkout), "HF_HUB_OFFLINE": "1", "PYTHONFAULTHANDLER": "1"},
    )  # fmt: skip
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
    yield {"url": url, "token": token, "checkout": checkout, "out": tmp_path, "server": server.pid}
    server.terminate()
    server.wait(timeout=30)


PROMPTS_RUN = """(minimum) => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
    .filter(p => /\\[(\\*|\\d+)\\]/.test(p.textContent)).length >= minimum"""
LAST_CELL_RAN_OR_FAILED = """() => {
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
    const failed = [...document.querySelectorAll('.jp-OutputArea-output')]
        .some(o => o.textContent.includes('Traceback (most recent call last)'));
    return failed || (prompts.length && /\\[\\d+\\]/.test(prompts[prompts.length - 1].textContent));
}"""


def start_run_all(page, lab, name: str) -> None:
    """Run ▸ Run All Cells, and see a cell start. The execution indicator reads 'idle' before the
    kernel has even started, and the menu item is disabled until the notebook is the current widget:
    on a loaded machine a first click can do nothing (CI, stop 27). Then it is clicked again, which is
    what a user does; a click that did start cells is never repeated."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(4):
        page.wait_for_timeout(2000)
        try:  # a dialog that does not go away by itself is a finding, and its text is the report
            page.wait_for_selector(".jp-Dialog", state="detached", timeout=30_000)
        except PlaywrightTimeout:
            fail_with_state(page, lab, name, "a dialog stays open")
        page.click(".jp-Notebook .jp-Cell >> nth=0")  # focus the notebook
        page.click("li.lm-MenuBar-item:has-text('Run')")
        item = page.locator("li.lm-Menu-item:not(.lm-mod-disabled):has(div.lm-Menu-itemLabel:text-is('Run All Cells'))")
        try:
            item.click(timeout=30_000)
        except PlaywrightTimeout:
            page.keyboard.press("Escape")  # the menu stays disabled for now: close it, try again
            continue
        try:
            page.wait_for_function(PROMPTS_RUN, arg=1, timeout=90_000)
            return
        except PlaywrightTimeout:
            continue
    fail_with_state(page, lab, name, "Run All Cells never started a cell (4 tries)")


def fail_with_state(page, lab, name: str, what: str) -> None:
    """What a reader of a CI log needs: which notebook, how far it got, a screenshot, the lab's log."""
    shot = lab["out"] / f"{name}-failed.png"
    page.screenshot(path=str(shot), full_page=True)
    prompts = page.eval_on_selector_all(".jp-CodeCell .jp-InputPrompt", "ps => ps.map(p => p.textContent.trim())")
    status = page.get_attribute(".jp-Notebook-ExecutionIndicator", "data-status")
    log = (lab["out"] / "lab.log").read_text(errors="replace").splitlines()[-25:]
    dialogs = page.eval_on_selector_all(".jp-Dialog", "ds => ds.map(d => d.innerText)")
    state = f"prompts {prompts}; indicator {status}; dialogs {dialogs}; screenshot {shot}"
    try:
        stacks = kernel_stacks(lab)
    except Exception as error:  # the evidence is a bonus: never hide the failure behind it
        stacks = f"\nkernel stacks unavailable: {error!r}"
    pytest.fail(f"{name}: {what}; {state}; lab.log ends:\n" + "\n".join(log) + stacks)


def kernel_stacks(lab) -> str:
    """Where each kernel of the lab is (a stuck one: the evidence): SIGABRT makes faulthandler
    print every thread's stack into lab.log before the kernel dies."""
    import psutil

    kernels = [
        p for p in psutil.Process(lab["server"]).children(recursive=True) if "ipykernel" in " ".join(p.cmdline())
    ]
    for kernel in kernels:
        kernel.send_signal(signal.SIGABRT)
    time.sleep(3)
    text = (lab["out"] / "lab.log").read_text(errors="replace")
    start = text.find("Fatal Python error")
    return "\nkernel stacks (SIGABRT):\n" + (text[start:][-12000:] if start >= 0 else "none printed")


def run_all(page, lab, name: str) -> dict:
    """Open a committed notebook, Run All, wait for every cell, save; the saved notebook."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # a workspace of its own per notebook: the lab opens it alone, not beside the ones before
    page.goto(f"{lab['url']}/lab/workspaces/{name}/tree/notebooks/{name}.ipynb?token={lab['token']}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    start_run_all(page, lab, name)
    try:  # the last code cell has run, or a cell failed (Run All stops there)
        page.wait_for_function(LAST_CELL_RAN_OR_FAILED, timeout=420_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    except PlaywrightTimeout:
        fail_with_state(page, lab, name, "the cells did not finish in 9 minutes")
    page.keyboard.press("Control+s")
    page.wait_for_timeout(1500)
    return json.loads((lab["checkout"] / "notebooks" / f"{name}.ipynb").read_text())


def errors_of(notebook: dict) -> list[str]:
    return [f"{output.get('ename')}: {output.get('evalue')}" for cell in notebook["cells"]
            for output in cell.get("outputs", []) if output.get("output_type") == "error"]  # fmt: skip


@pytest.mark.slow
def test_every_notebook_runs_as_opened_then_the_slider_and_try_it(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])  # fmt: skip
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for name in NOTEBOOKS:
            notebook = run_all(page, lab, name)
            assert not errors_of(notebook), (name, errors_of(notebook))
            code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
            assert all(cell["execution_count"] for cell in code), name
        # 50_explore is open: move the fusion slider with the keyboard; the displayed test UA follows
        shown = {"chosen": shown_test_ua(page.inner_text(".merlib-metrics"))}
        handle = page.locator(".merlib-fusion-w1 .noUi-handle").first
        for key, w1 in (("Home", "0.00"), ("End", "1.00")):
            handle.focus()
            page.keyboard.press(key)
            page.wait_for_function(
                f"() => document.querySelector('.merlib-metrics').innerText.includes('w1 = {w1}')", timeout=60_000
            )
            shown[w1] = shown_test_ua(page.inner_text(".merlib-metrics"))
        assert len(set(shown.values())) > 1, f"the displayed test UA did not change with w1: {shown}"
        # try it: the fusion weight set by the user first; a sentence typed and spoken, then another
        # one: the button is busy while the models work, the probabilities change, the weight stays
        weight = page.locator(".merlib-tryit-w1 .noUi-handle").first
        weight.focus()
        page.keyboard.press("Home")
        readout = ".merlib-tryit-w1 .widget-readout"
        page.wait_for_function(f"() => document.querySelector('{readout}').innerText.trim() === '0.00'")
        tables = []
        for sentence in ("This is the best news I have heard all year!", "Nobody even came to the funeral."):
            page.fill(".merlib-tryit-sentence input", sentence)
            page.click("button.merlib-tryit-say")
            page.wait_for_timeout(500)
            page.click("button.merlib-tryit-predict")
            if not tables:  # the first prediction loads the fold models: seconds of "predicting…"
                page.wait_for_selector("button.merlib-tryit-predict:disabled", timeout=10_000)
            before = json.dumps(tables[-1] if tables else "")
            page.wait_for_function(
                "() => document.querySelectorAll('.merlib-prediction').length && "
                f"document.querySelector('.merlib-prediction').innerText !== {before}",
                timeout=120_000,
            )
            tables.append(page.inner_text(".merlib-prediction"))
            assert page.inner_text(readout).strip() == "0.00", "a prediction moved the user's fusion weight"
        page.screenshot(path=str(lab["out"] / "50_explore.png"), full_page=True)
        print(f"screenshot: {lab['out'] / '50_explore.png'}; test UA shown: {shown}")
        browser.close()
    assert "fine-tuned" in tables[0] and "MiniLM" in tables[0] and tables[0] != tables[1]


def shown_test_ua(text: str) -> str:
    return text.split("test UA")[-1].split("%")[0].strip()
