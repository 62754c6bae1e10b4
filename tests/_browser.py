"""Real servers and a real browser for widget tests.

JupyterLab and Voilà run as subprocesses on free loopback ports; Playwright drives Debian's
Chromium (never a downloaded browser: NOTEBOOK_STACK.md). Failures keep a screenshot under
``runs/test-artifacts/`` (or ``$OTKIT_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("OTKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("OTKIT_TEST_ARTIFACTS", ROOT / "runs" / "test-artifacts"))


def require_browser() -> None:
    """Skip (saying why) when Chromium or Playwright is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (make test installs it when run as root)")
    pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer in {timeout} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def server(kind: str, notebook: str | None = None, timeout: float = 90.0):
    """Start ``"lab"`` or ``"voila"`` on 127.0.0.1; yield ``(base_url, token)``; stop with SIGTERM."""
    port, token = free_port(), secrets.token_hex(16)
    log = Path(tempfile.mkstemp(prefix=f"otkit-{kind}-", suffix=".log")[1])
    env = dict(os.environ, OTKIT_METRICS_PATH=str(log.with_suffix(".metrics.json")))
    if kind == "lab":
        # Autosave off: a test must not rewrite the committed notebooks (Lab would save
        # them with its own metadata).
        settings = Path(tempfile.mkdtemp(prefix="otkit-lab-settings-"))
        plugin = settings / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
        plugin.parent.mkdir(parents=True)
        plugin.write_text('{"autosave": false}')
        cmd = [
            _bin("jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
            f"--LabApp.user_settings_dir={settings}",
            # a fresh workspace: Lab must not reopen the tabs of an earlier session
            f"--LabApp.workspaces_dir={settings / 'workspaces'}",
        ]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        probe = f"http://127.0.0.1:{port}/api/status?token={token}"
    elif kind == "voila":
        cmd = [
            _bin("voila"), str(ROOT / notebook), "--no-browser", f"--port={port}",
            "--Voila.ip=127.0.0.1", "--show_tracebacks=True",
        ]
        token = ""
        probe = f"http://127.0.0.1:{port}/voila/static/require.min.js"
    else:
        raise ValueError(f"kind must be 'lab' or 'voila', got {kind!r}")
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                start_new_session=True)
    try:
        try:
            _wait_http(probe, proc, timeout, log)
        except TimeoutError:
            if kind != "voila":
                raise
            # Voila's static files move between versions: the root page answering suffices.
            _wait_http(f"http://127.0.0.1:{port}/", proc, 5, log)
        yield f"http://127.0.0.1:{port}", token
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def notebook_kept(notebook: str):
    """The committed ``notebook`` must come back unchanged from a Lab session.

    ``server("lab")`` turns autosave off; should the file change anyway it is restored and the
    test fails. The checkpoint folder Lab makes on opening it is removed if it was not there.
    """
    import pytest

    path = ROOT / notebook
    original = path.read_bytes()
    checkpoints = path.parent / ".ipynb_checkpoints"
    had_checkpoints = checkpoints.exists()
    yield
    if not had_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    if path.read_bytes() != original:
        path.write_bytes(original)
        pytest.fail(f"JupyterLab rewrote {notebook} (now restored)")


def lab_run_all(page, url: str, token: str, notebook: str) -> None:
    """Open ``notebook`` in JupyterLab, wait for its kernel, then Run > Run All Cells."""
    page.goto(f"{url}/lab/tree/{notebook}?token={token}", timeout=120_000)
    page.wait_for_selector(".jp-Notebook", timeout=120_000)
    # the kernel name shows once the kernel is connected (the status says Idle before)
    page.wait_for_selector(".jp-Toolbar-kernelName:has-text('Python 3')", timeout=120_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=120_000)
    # the menu bar's own label: "text=Run" would match any text containing "run"
    page.click(".lm-MenuBar-itemLabel:text-is('Run')", timeout=30_000)
    page.click("li[data-command='runmenu:run-all']", timeout=30_000)


def wait_kernel_settled(page, timeout_s: float, quiet_s: float = 3.0) -> None:
    """Wait until Lab's kernel has been idle for ``quiet_s`` in a row: Run All has finished
    (between two queued cells the kernel reads idle for an instant only)."""
    deadline = time.monotonic() + timeout_s
    idle_since = None
    selector = ".jp-Notebook-ExecutionIndicator[data-status='idle']"
    while True:
        now = time.monotonic()
        if page.locator(selector).count():
            idle_since = idle_since or now
            if now - idle_since >= quiet_s:
                return
        else:
            idle_since = None
        if now > deadline:
            raise AssertionError(f"the notebook was still running after {timeout_s:.0f} s")
        page.wait_for_timeout(250)


@contextlib.contextmanager
def browser_page(name: str):
    """A Chromium page; on an exception its screenshot is saved as ``<name>.png``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        page = context.new_page()
        try:
            yield page
        except BaseException:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(Exception):
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            raise
        finally:
            context.close()


# ------------------------------------------------------------------ a widget, drawn


@contextlib.contextmanager
def widget_in_voila(notebook: str, widget: str, ready_stat: str, name: str,
                    timeout_ms: int = 120_000):
    """A page showing ``notebook`` as a Voilà app, once ``widget`` has drawn its stats and plot.

    ``ready_stat`` names a ``.otkit-stat-<name>`` element that appears with the first
    compute; ``name`` names the failure screenshot.
    """
    require_browser()
    with server("voila", notebook, timeout=90) as (url, _), browser_page(name) as page:
        page.goto(url + "/", timeout=timeout_ms)
        page.wait_for_selector(f"{widget} .otkit-stat-{ready_stat}", timeout=timeout_ms)
        page.wait_for_selector(f"{widget} .js-plotly-plot", timeout=60_000)
        yield page


@contextlib.contextmanager
def widget_in_lab(notebook: str, widget: str, ready_stat: str, name: str,
                  timeout_ms: int = 120_000):
    """A JupyterLab page that ran all of ``notebook``, scrolled to the drawn ``widget``.

    The committed notebook must come back unchanged (:func:`notebook_kept`).
    """
    require_browser()
    with (
        notebook_kept(notebook),
        server("lab", timeout=90) as (url, token),
        browser_page(name) as page,
    ):
        lab_run_all(page, url, token, notebook)
        page.wait_for_selector(f"{widget} .otkit-stat-{ready_stat}", timeout=timeout_ms)
        page.wait_for_selector(f"{widget} .js-plotly-plot", timeout=60_000)
        # The widget comes first in the notebooks; the studies after it keep the kernel busy,
        # and the widget's callbacks would wait for them: let Run All finish first.
        wait_kernel_settled(page, timeout_ms / 1000)
        page.locator(widget).scroll_into_view_if_needed()
        yield page


# ------------------------------------------------------------------ reading a widget's page

#: Plotly's drawn figure, read from the page: ``{attr: {trace name: value}}`` for each dotted
#: trace attribute asked for (typed arrays as lists, also nested: a heatmap's z), with
#: ``layout.meta`` as ``meta`` and the title's text as ``title``.
_PLOT_JS = """([sel, attrs]) => {
    const plot = document.querySelector(sel + ' .js-plotly-plot');
    const plain = (v) => (Array.isArray(v) || ArrayBuffer.isView(v)) ? Array.from(v, plain) : v;
    const get = (t, path) => path.split('.').reduce((o, k) => (o == null ? o : o[k]), t);
    const out = {meta: plot.layout.meta, title: plot.layout.title && plot.layout.title.text};
    for (const attr of attrs) {
        out[attr] = {};
        for (const t of plot._fullData) out[attr][t.name] = plain(get(t, attr));
    }
    return out;
}"""


#: The widths (px) of the plot plotly drew (its ``_fullLayout.width`` and its main SVG's box)
#: and of the output area holding the widget (Lab's and Voilà's ``.jp-OutputArea-output``).
#: Not the ``.js-plotly-plot`` div's box: that div always fills the output area, whatever
#: the width of the SVG plotly drew inside it (700 px in JupyterLab before the fix).
_WIDTHS_JS = """(sel) => {
    const plot = document.querySelector(sel + ' .js-plotly-plot');
    const area = plot.closest('.jp-OutputArea-output') || document.querySelector(sel).parentElement;
    return {layout: plot._fullLayout.width,
            drawn: plot.querySelector('.main-svg').getBoundingClientRect().width,
            output: area.getBoundingClientRect().width};
}"""


def wait_for(page, condition, timeout_s: float, what: str) -> None:
    """Poll ``condition()`` every 250 ms; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        page.wait_for_timeout(250)


class WidgetPage:
    """One otkit widget on a page, found by its CSS class ``widget`` (e.g. ``".otkit-lowrank"``).

    What a browser test reads and does, through the stable hooks of ``widgets.base``: the
    stats' ``data-value``, the status line's ``data-computes``, plotly's ``_fullData`` and
    ``layout.meta``, the keyboard on a slider's handle.
    """

    def __init__(self, page, widget: str) -> None:
        self.page, self.widget = page, widget

    def stat(self, name: str) -> str:
        """The ``data-value`` of the widget's ``.otkit-stat-<name>`` element."""
        return self.page.get_attribute(f"{self.widget} .otkit-stat-{name}", "data-value")

    def computes(self) -> int:
        """How many computes the widget has finished (its status line's ``data-computes``)."""
        return int(self.page.get_attribute(
            f"{self.widget} .otkit-status [data-computes]", "data-computes"))

    def plot(self, *attrs: str) -> dict:
        """What plotly drew: ``{attr: {trace name: value}, "meta": ..., "title": ...}``.

        ``attrs`` are dotted paths into plotly's full traces (``"x"``, ``"z"``,
        ``"marker.size"``); with none, only ``meta`` and ``title`` are read.
        """
        return self.page.evaluate(_PLOT_JS, [self.widget, list(attrs)])

    def meta(self) -> dict:
        """The figure's ``layout.meta``: the numbers the widget drew."""
        return self.plot()["meta"]

    def count(self, selector: str) -> int:
        """How many elements inside the widget match ``selector``."""
        return self.page.locator(f"{self.widget} {selector}").count()

    def click(self, selector: str) -> None:
        self.page.click(f"{self.widget} {selector}")

    def press(self, control: str, key: str, times: int = 1) -> None:
        """Focus the slider ``.otkit-control-<control>``'s handle and press ``key`` ``times``."""
        self.page.focus(f"{self.widget} .otkit-control-{control} .noUi-handle")
        for _ in range(times):
            self.page.keyboard.press(key)

    def wait_for(self, condition, timeout_s: float, what: str) -> None:
        wait_for(self.page, condition, timeout_s, what)

    def widths(self) -> dict:
        """``{"layout", "drawn", "output"}``: the plot's width as plotly laid it out and as
        drawn, and its output area's width (px)."""
        return self.page.evaluate(_WIDTHS_JS, self.widget)

    def check_fills_width(self, timeout_s: float = 15, tolerance_px: float = 4) -> None:
        """The plot fills its output area's width (within ``tolerance_px``), and still does
        after the window narrows by 400 px and widens back."""
        page = self.page
        size = dict(page.viewport_size)

        def fills() -> bool:
            w = self.widths()
            return (abs(w["drawn"] - w["output"]) <= tolerance_px
                    and abs(w["layout"] - w["output"]) <= tolerance_px)

        def check(when: str) -> dict:
            try:
                self.wait_for(fills, timeout_s, f"the plot to fill its output area {when}")
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {self.widths()}") from None
            return self.widths()

        wide = check("as opened")
        try:
            page.set_viewport_size({**size, "width": size["width"] - 400})
            self.wait_for(lambda: self.widths()["output"] < wide["output"] - 200, timeout_s,
                          "the output area to narrow with the window")
            check("after the window narrowed")
        finally:
            page.set_viewport_size(size)
        self.wait_for(lambda: self.widths()["output"] > wide["output"] - 4, timeout_s,
                      "the output area to widen again with the window")
        check("after the window widened again")

    def wait_ready(self, timeout_s: float = 60) -> None:
        """Wait for the status line to read ready (no compute pending or running)."""
        self.page.wait_for_selector(f"{self.widget} .otkit-status-ready",
                                    timeout=timeout_s * 1000)


# ------------------------------------------------------------------ one scenario, two servers


def in_voila_and_lab(notebook: str, widget: str, ready_stat: str, *,
                     timeout_ms: int = 120_000, lab_timeout_ms: int | None = None,
                     one_thread_kernels: bool = True, check_width: bool = True):
    """Decorator: the scenario ``test_x(w)`` becomes the tests ``test_x[voila]`` and
    ``test_x[lab]``, marked ``browser`` and ``slow``.

    Each opens ``notebook`` (as a Voilà app, or run all in JupyterLab: :func:`widget_in_voila`,
    :func:`widget_in_lab`), waits for ``widget`` to draw its ``ready_stat`` stat and its plot
    within ``timeout_ms`` (``lab_timeout_ms`` in Lab, if given), then calls the scenario with
    a :class:`WidgetPage`; after it, with ``check_width``, the plot must fill its output
    area's width and follow a window resize (:meth:`WidgetPage.check_fills_width`). A failure
    keeps the screenshot ``<server>-<widget>.png``. With ``one_thread_kernels`` the kernels
    run on one thread (conftest's fixture).
    """

    def decorate(scenario):
        def test(server: str) -> None:
            opened, limit = (
                (widget_in_voila, timeout_ms) if server == "voila"
                else (widget_in_lab, lab_timeout_ms or timeout_ms)
            )
            name = f"{server}-{widget.removeprefix('.otkit-')}"
            with opened(notebook, widget, ready_stat, name, timeout_ms=limit) as page:
                w = WidgetPage(page, widget)
                scenario(w)
                if check_width:
                    w.check_fills_width()

        # not functools.wraps: pytest would read the scenario's signature through __wrapped__
        for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
            setattr(test, attr, getattr(scenario, attr))
        test = pytest.mark.parametrize("server", ["voila", "lab"])(test)
        if one_thread_kernels:
            test = pytest.mark.usefixtures("one_thread_kernels")(test)
        return pytest.mark.slow(pytest.mark.browser(test))

    return decorate
