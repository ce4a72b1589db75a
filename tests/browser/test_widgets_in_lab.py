"""The lessons' sliders, driven the way a student drives them: JupyterLab in headless Chromium.

For each lesson with widgets: start JupyterLab on 127.0.0.1 over *copies* of the notebooks, open the
notebook, Run All, then move every slider with the keyboard and check that the kernel redrew the
figure below it (the PNG the kernel sends changes) and that the slider's readout changed.  A screenshot
of each widget state goes to ``build/browser/``.  Server, kernels and browser are stopped by PID.

Needs Chromium (``/usr/bin/chromium``, or ``$CHROMIUM``) and the ``playwright`` package; without them
the tests are skipped with the reason (``make test`` prints skips).  Run: ``make test-browser``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import run_notebooks  # noqa: E402

ARTIFACTS = ROOT / "build" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
RUN_ALL_TIMEOUT_S = 900  # one lesson, Run All, on a busy 2-core machine
# lesson -> number of sliders it shows
LESSONS = {"03_discriminative_lr": 2, "04_dann": 2, "05_mmd": 1, "06_knowledge_distillation": 2}
# Under `pytest -n 2` (make test) each group goes to one worker, paired so both take about as long
# (Run All at one thread: 06 + 05 about 90 s, 03 + 04 about 70 s).
GROUPS = {"06_knowledge_distillation": "a", "05_mmd": "a", "03_discriminative_lr": "b", "04_dann": "b"}

playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                                     "(it is in environment.yml; run `make install`)")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM}: install it (`apt-get install chromium`, which .ci/run does) "
                "or set $CHROMIUM", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, token: str, path: str, method: str = "GET") -> list | dict | None:
    req = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if body else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server over copies of the widget lessons; yields (base_url, token)."""
    root = tmp_path_factory.mktemp("lab")
    for name in LESSONS:
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", root)
    home = tmp_path_factory.mktemp("jupyter-home")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "ws"),
           "COURSE_PROFILE": os.environ.get("COURSE_PROFILE", "quick")}
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))  # make test: 2, each its own JupyterLab
    if workers > 1:
        env = run_notebooks.cpu_share(env, workers)
    settings = {"notebook-extension/tracker": {"autoStartDefaultKernel": True},  # no "Select Kernel" dialog
                "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}
    for plugin, values in settings.items():
        path = home / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    log = open(home / "lab.log", "w")
    cmd = [str(Path(sys.executable).with_name("jupyter-lab")), "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                _api(base, token, "/api/status")
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"jupyter-lab exited early:\n{(home / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail(f"jupyter-lab did not answer on {base}:\n{(home / 'lab.log').read_text()[-2000:]}")
        yield base, token
    finally:
        try:
            for kernel in _api(base, token, "/api/kernels") or []:
                _api(base, token, f"/api/kernels/{kernel['id']}", method="DELETE")
        except OSError:
            pass
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _wait_for_kernel(page, lab, lesson: str) -> None:
    """Until the server has an idle kernel for this notebook (JupyterLab starts it: autoStartDefaultKernel)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        accept = page.locator(".jp-Dialog .jp-mod-accept")  # a "Select Kernel" dialog, should one still appear
        if accept.count():
            accept.first.click()
        sessions = [s for s in _api(*lab, "/api/sessions") if s["path"].endswith(f"{lesson}.ipynb")]
        if sessions and sessions[0]["kernel"]["execution_state"] == "idle":
            return
        time.sleep(0.5)
    pytest.fail(f"{lesson}: no idle kernel within 120 s")


def _run_all_and_wait(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator("li.lm-Menu-item[data-command='runmenu:run-all']").click()
    deadline = time.monotonic() + RUN_ALL_TIMEOUT_S
    page.wait_for_selector(".jp-InputPrompt:has-text('[*]')", timeout=30_000)  # the run has started
    while time.monotonic() < deadline:
        busy = page.locator(".jp-InputPrompt", has_text="[*]").count()
        idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count()
        if not busy and idle:
            return
        time.sleep(1)
    pytest.fail(f"Run All did not finish within {RUN_ALL_TIMEOUT_S} s")


def _figure(box) -> str:
    img = box.locator(".widget-output img").first
    img.wait_for(timeout=60_000)
    return img.get_attribute("src") or ""


@pytest.mark.parametrize("lesson", [pytest.param(n, marks=pytest.mark.xdist_group(GROUPS[n])) for n in LESSONS])
def test_sliders_redraw_their_figure(lab, browser, lesson):
    base, token = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page()
    try:
        # A workspace of its own, reset, so no other lesson's tab is restored beside this one.
        page.goto(f"{base}/lab/workspaces/{lesson}/tree/{lesson}.ipynb?reset&token={token}", timeout=120_000)
        page.wait_for_selector(".jp-Notebook", timeout=120_000)
        _wait_for_kernel(page, lab, lesson)
        _run_all_and_wait(page)
        errors = page.locator("[data-mime-type='application/vnd.jupyter.error']")
        assert errors.count() == 0, f"{lesson}: a cell raised:\n{errors.first.inner_text()[:2000]}"

        sliders = page.locator(".widget-slider")
        assert sliders.count() == LESSONS[lesson], f"{lesson}: expected {LESSONS[lesson]} sliders"
        box = page.locator(".widget-vbox", has=page.locator(".widget-slider")).first
        box.scroll_into_view_if_needed()
        box.screenshot(path=str(ARTIFACTS / f"{lesson}-0-initial.png"))
        for i in range(sliders.count()):
            slider = sliders.nth(i)
            readout = slider.locator(".widget-readout")
            before_value, before_fig = readout.inner_text(), _figure(box)
            handle = slider.locator(".noUi-handle")
            handle.focus()
            for _ in range(3):
                handle.press("ArrowRight")
            deadline = time.monotonic() + 120
            while _figure(box) == before_fig and time.monotonic() < deadline:
                time.sleep(0.5)
            after_value = readout.inner_text()
            box.screenshot(path=str(ARTIFACTS / f"{lesson}-{i + 1}-slider{i}-moved.png"))
            assert after_value != before_value, f"{lesson} slider {i}: readout stayed at {before_value}"
            assert _figure(box) != before_fig, f"{lesson} slider {i} ({before_value} -> {after_value}): " \
                                               "the kernel did not redraw the figure"
    finally:
        page.close()
