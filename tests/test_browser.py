"""Notebooks 00 and 03 in a real JupyterLab, driven by headless Chromium (selenium + the system
chromedriver; nothing downloads a browser): run every cell, check that each interactive figure
shows once, that no cell or widget shows an error, and that moving a slider redraws the figure.

Skips where selenium, JupyterLab, ``chromium`` or ``chromedriver`` is missing (Debian:
``apt-get install chromium chromium-driver``). ``make test-browser`` runs only this file; set
``DLRMCOMP_CHROMIUM`` / ``DLRMCOMP_CHROMEDRIVER`` for binaries elsewhere. The notebooks run from a
copy in a temporary folder (Lab never saves over the committed ones) and record into another.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("00_codecs_tour", "03_speedup_model")
TOKEN = "dlrmcomp-browser-test"
RUN_TIMEOUT_S = 600


def find_binary(env: str, *names: str) -> str | None:
    """The executable named by ``env`` if set (None if it is not one), else the first of ``names`` on PATH."""
    if os.environ.get(env):
        return shutil.which(os.environ[env])
    return next((p for p in map(shutil.which, names) if p), None)


CHROMIUM = find_binary("DLRMCOMP_CHROMIUM", "chromium", "chromium-browser")
CHROMEDRIVER = find_binary("DLRMCOMP_CHROMEDRIVER", "chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a copy of the notebooks, and a headless Chromium driving it."""
    pytest.importorskip("jupyterlab")
    pytest.importorskip("selenium")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("no chromium / chromedriver (Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "notebooks"
    root.mkdir()
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", root)
    settings = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false",
                                                                           "checkForUpdates": False}))
    port = free_port()
    env = {**os.environ, "DLRMCOMP_RUNS_DIR": str(tmp / "runs"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    env.pop("DLRMCOMP_HEADLESS", None)  # widgets on: this is the live-kernel path
    log = open(tmp / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", "--allow-root",
         "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={tmp / 'settings'}",
         f"--LabApp.workspaces_dir={tmp / 'workspaces'}"], env=env, stdout=log, stderr=subprocess.STDOUT)
    driver = None
    try:
        wait_for(lambda: server.poll() is not None or _listening(port), 120, "the JupyterLab server")
        if server.poll() is not None:
            pytest.fail(f"jupyter lab exited {server.returncode}:\n{(tmp / 'server.log').read_text()[-3000:]}")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--window-size=1400,1000"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        yield driver, f"http://127.0.0.1:{port}", tmp
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


PANEL = "window.jupyterapp.shell.currentWidget"

CELLS_JS = f"""
const nb = {PANEL}.content;
return nb.widgets.filter(c => c.model.type === 'code').map(c => ({{
  count: c.model.executionCount,
  outputs: c.model.outputs.toJSON().map(o => ({{type: o.output_type, name: o.name || '',
                                                 text: o.ename ? o.ename + ': ' + o.evalue : ''}}))}}));
"""

# per interactive widget: images in its output, images in its whole cell, error/stderr outputs
# shown inside it (a failing redraw lands there, not in the notebook model), the first image
WIDGETS_JS = """
return Array.from(document.querySelectorAll('.jp-Notebook .widget-interact')).map(w => {
  const out = w.querySelector('.widget-output');
  const cell = w.closest('.jp-Cell');
  const img = out ? out.querySelector('img') : null;
  return {images: out ? out.querySelectorAll('img').length : -1,
          cell_images: cell.querySelectorAll('img').length,
          errors: out ? out.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"], .jp-OutputArea-executeResult .jp-RenderedText[data-mime-type*="error"]').length : 0,
          sliders: w.querySelectorAll('.noUi-handle').length,
          readout: (w.querySelector('.widget-readout') || {}).textContent || '',
          src: img ? img.src : ''};
});
"""


def kernel_status(driver) -> str:
    return driver.execute_script(f"const p = {PANEL}; return p && p.sessionContext && p.sessionContext.session "
                                 "&& p.sessionContext.session.kernel ? p.sessionContext.session.kernel.status : '';")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_jupyterlab_and_its_sliders_redraw(lab, name):
    from selenium.webdriver.common.keys import Keys

    driver, url, tmp = lab
    start = time.monotonic()
    driver.get(f"{url}/lab/tree/{name}.ipynb?token={TOKEN}&reset")
    wait_for(lambda: driver.execute_script(f"const p = {PANEL}; return !!(p && p.title.label === '{name}.ipynb')"),
             120, f"{name} to open")
    wait_for(lambda: kernel_status(driver) == "idle", 120, "the kernel")
    # started here, polled below: one blocking WebDriver call would hit the driver's HTTP timeout
    driver.execute_script("window.__ran = ''; window.jupyterapp.commands.execute('notebook:run-all-cells')"
                          ".then(r => { window.__ran = String(r); }, e => { window.__ran = 'error ' + e; });")
    ran = wait_for(lambda: driver.execute_script("return window.__ran;"), RUN_TIMEOUT_S, f"{name} to run")
    wait_for(lambda: kernel_status(driver) == "idle", RUN_TIMEOUT_S, f"{name} to finish")
    cells = driver.execute_script(CELLS_JS)
    errors = [o["text"] for c in cells for o in c["outputs"] if o["type"] == "error"]
    stderr = [c for c in cells if any(o["type"] == "stream" and o["name"] == "stderr" for o in c["outputs"])]
    assert ran == "true" and not errors, errors
    assert all(c["count"] for c in cells), "a cell did not run"
    assert not stderr, stderr
    assert any(o["type"] == "stream" and o["name"] == "stdout" for o in cells[-1]["outputs"])  # "recorded in ..."

    widgets = wait_for(lambda: [w for w in driver.execute_script(WIDGETS_JS) if w["images"] > 0] or None, 60,
                       "the interactive figures")
    for w in widgets:  # one figure per widget output, and none next to it in the same cell
        assert (w["images"], w["cell_images"], w["errors"]) == (1, 1, 0), w
    if name == "03_speedup_model":
        from dlrmcomp.bench.measured import bandwidth_options

        assert widgets[0]["readout"] in {label for label, _ in bandwidth_options()}, widgets[0]["readout"]

    # move the first slider of the first widget one step: the figure is redrawn, still once
    before = widgets[0]
    handle = driver.find_elements("css selector", ".jp-Notebook .widget-interact .noUi-handle")[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", handle)
    handle.send_keys(Keys.ARROW_RIGHT)
    after = wait_for(lambda: next((w for w in driver.execute_script(WIDGETS_JS)
                                   if w["images"] == 1 and w["src"] and w["src"] != before["src"]), None),
                     120, "the figure to redraw after moving the slider")
    wait_for(lambda: kernel_status(driver) == "idle", 120, "the redraw to finish")
    after = driver.execute_script(WIDGETS_JS)[0]
    assert (after["images"], after["cell_images"], after["errors"]) == (1, 1, 0), after
    assert after["src"] != before["src"] and after["readout"] != before["readout"]
    assert not [o for c in driver.execute_script(CELLS_JS) for o in c["outputs"] if o["type"] == "error"]
    driver.save_screenshot(str(tmp / f"{name}.png"))
    print(f"{name}: {time.monotonic() - start:.0f} s in JupyterLab")
