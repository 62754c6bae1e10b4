"""The base of otkit's widgets: ipywidgets controls driving a plotly ``FigureWidget``.

A widget subclasses :class:`InteractiveFigure` and provides four things:

* ``make_controls()`` → ``{name: ipywidget}``: the controls, keyed by the name of the
  ``compute`` parameter each one sets;
* ``make_figure()`` → ``go.FigureWidget``: the figure, with its traces already in place
  (drawing only updates them, so trace indices and names stay stable);
* ``compute(**params)`` → state: the computation, a plain method (usually a thin call to a
  module-level function) that tests call without a browser;
* ``draw(state)``: updates the figure (inside ``figure.batch_update()``) and ``self.stats``.

The base wires every control's ``value`` to a recompute and handles the rest:

* **Debouncing.** A change schedules the compute ``debounce_ms`` later on the running asyncio
  loop (the kernel's); a change within that window reschedules it, so dragging a slider or
  holding an arrow key computes only the last value. Without a running loop (plain Python,
  tests) or with ``debounce_ms=0`` the compute runs at once, synchronously.
* **Busy state.** From the first change until the figure is drawn, the status reads
  "computing…" (``.otkit-status-busy``) and the outer box carries the CSS class ``otkit-busy``;
  with ``disable_while_busy=True`` the controls are also disabled during the compute itself
  (off by default: disabling a focused slider drops the keyboard focus).
* **One thread.** ``compute`` and ``draw`` run with torch on one thread
  (:attr:`InteractiveFigure.compute_threads`, :func:`torch_threads`), the count restored after.
* **Width.** The figure (:func:`figure_widget`, a :class:`FollowWidthFigureWidget`) fills its
  output area's width and follows it as the window or the notebook's panels are resized.
* **Errors.** An exception in ``compute`` or ``draw`` is shown in the status area in red
  (``.otkit-status-error``), kept in :attr:`InteractiveFigure.error` with its traceback in
  :attr:`InteractiveFigure.error_traceback`, and logged; the last good figure stays.

Stable hooks for browser tests (all CSS classes on the page):

* ``otkit-widget`` on the outer box, ``otkit-controls`` on the controls' box,
  ``otkit-control-<name>`` on each control (underscores become dashes);
* ``otkit-status`` on the status ``HTML``; inside it one span with class
  ``otkit-status-ready`` / ``otkit-status-busy`` / ``otkit-status-error`` and
  ``data-computes="<k>"``, the number of finished computes (it grows after each redraw);
* ``otkit-stats`` on the stats ``HTML`` (its content is the subclass's).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import html
import logging
import math
import re
import time
import traceback
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import ipywidgets as ipw
import plotly.graph_objects as go
import torch

from otkit.sinkhorn import ConvergenceWarning
from otkit.validation import check_choice, check_count

__all__ = [
    "InteractiveFigure", "FitCache", "recorded_warnings", "unique_messages", "RECORDED_WARNINGS",
    "figure_widget", "FollowWidthFigureWidget", "torch_threads", "seed_control", "fixed",
    "rows_with_gaps",
]

log = logging.getLogger(__name__)


def _css_name(name: str) -> str:
    return name.replace("_", "-")


def _row(controls: list[ipw.Widget]) -> ipw.HBox:
    return ipw.HBox(controls, layout=ipw.Layout(flex_flow="row wrap"))


@contextlib.contextmanager
def torch_threads(count: int | None = 1):
    """torch computes on ``count`` threads inside the block; the previous count is restored
    on leaving it, also on an exception. ``None`` changes nothing."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    if before != count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _snap(control: ipw.Widget, value: Any) -> Any:
    """``value`` moved onto the slider's grid (``min + k·step``, in exponent for log sliders).

    The browser's slider snaps a value it is sent and sends the snapped one back, which would
    cost a second compute (and show a value the slider cannot display): snap here first.
    Non-numbers are passed through for the control's own validation to reject.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return value
    step = getattr(control, "step", None)
    if not step or step <= 0:
        return value
    if isinstance(control, ipw.FloatLogSlider):
        if value <= 0:
            return value
        lo, hi, base = control.min, control.max, control.base
        exponent = min(max(math.log(value, base), lo), hi)
        exponent = round(lo + round((exponent - lo) / step) * step, 10)
        return base ** min(exponent, hi)
    if isinstance(control, (ipw.IntSlider, ipw.FloatSlider)):
        lo, hi = control.min, control.max
        snapped = min(max(lo + round((min(max(value, lo), hi) - lo) / step) * step, lo), hi)
        return int(snapped) if isinstance(control, ipw.IntSlider) else round(snapped, 12)
    return value


class InteractiveFigure:
    """Controls + a plotly ``FigureWidget`` + a status line; see the module docstring.

    Args:
        debounce_ms: the quiet time after the last control change before computing; 0 computes
            synchronously on every change.
        disable_while_busy: disable the controls while computing.
        **params: initial values of the controls (by control name).

    Attributes:
        controls: ``{name: widget}``.
        figure: the ``go.FigureWidget``.
        status, stats: ``ipywidgets.HTML``.
        ui: the ``ipywidgets.VBox`` holding everything (what ``display`` shows).
        state: the last computed state (``None`` before the first success).
        error: the exception of the last failed compute, ``None`` after a success.
        n_computes: how many computes finished (successful or not).
        busy: whether a compute is pending or running.
    """

    #: Extra CSS class for the outer box (subclasses set it, e.g. ``"otkit-sharpness"``).
    css_class: str = ""

    #: torch's thread count while computing and drawing (:func:`torch_threads`), ``None`` to
    #: leave it alone. A widget's solves are small: with several threads on a busy machine
    #: OpenMP's barriers make them crawl (40× slower under background load), one thread never
    #: waits for another.
    compute_threads: int | None = 1

    def __init__(self, *, debounce_ms: float = 150, disable_while_busy: bool = False, **params):
        if not isinstance(debounce_ms, (int, float)) or debounce_ms < 0:
            raise ValueError(f"debounce_ms must be a number >= 0, got {debounce_ms!r}")
        self.debounce_ms = float(debounce_ms)
        self.disable_while_busy = bool(disable_while_busy)
        self.state: Any = None
        self.error: BaseException | None = None
        self.error_traceback: str | None = None
        self.n_computes = 0
        self.busy = False
        self.last_compute_s: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._suspended = False

        self.controls: dict[str, ipw.ValueWidget] = dict(self.make_controls())
        for name, control in self.controls.items():
            control.add_class("otkit-control")
            control.add_class(f"otkit-control-{_css_name(name)}")
        self._apply(params)

        self.figure = self.make_figure()
        self.status = ipw.HTML(layout=ipw.Layout(min_height="1.6em"))
        self.status.add_class("otkit-status")
        self.stats = ipw.HTML()
        self.stats.add_class("otkit-stats")
        self.controls_box = self.layout_controls(list(self.controls.values()))
        self.controls_box.add_class("otkit-controls")
        self.ui = ipw.VBox([self.controls_box, self.status, self.figure, self.stats])
        self.ui.add_class("otkit-widget")
        if self.css_class:
            self.ui.add_class(self.css_class)

        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self._run()  # the first state, synchronously: the widget shows a figure at once

    # ----- to implement -------------------------------------------------------------------
    def make_controls(self) -> dict[str, ipw.ValueWidget]:
        raise NotImplementedError

    def make_figure(self):
        raise NotImplementedError

    def compute(self, **params) -> Any:
        raise NotImplementedError

    def draw(self, state: Any) -> None:
        raise NotImplementedError

    def layout_controls(self, controls: list[ipw.Widget]) -> ipw.Box:
        """The box holding the controls (override for another arrangement, e.g. returning
        :meth:`control_rows`)."""
        return _row(controls)

    def control_rows(self, *rows: list[str | ipw.Widget]) -> ipw.VBox:
        """The controls in rows, one wrapping ``HBox`` a row (as :meth:`layout_controls`
        makes for all of them), stacked in a ``VBox``. A row lists controls by name, or
        widgets that are not controls (e.g. a slider that only picks what to show)."""
        return ipw.VBox([
            _row([self.controls[c] if isinstance(c, str) else c for c in row]) for row in rows
        ])

    # ----- public -------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        """The controls' current values, by name: what ``compute`` receives."""
        return {name: control.value for name, control in self.controls.items()}

    def trace(self, name: str):
        """The figure's trace called ``name``: ``make_figure`` names every trace it creates."""
        for trace in self.figure.data:
            if trace.name == name:
                return trace
        raise KeyError(f"no trace named {name!r}; the figure has {[t.name for t in self.figure.data]}")

    def set(self, **params) -> InteractiveFigure:
        """Set controls programmatically, as a user would: one (debounced) recompute.

        Slider values are snapped to the slider's grid, as the browser would (e.g. a log
        slider with step 0.05 turns 0.005 into 10^-2.3 ≈ 0.00501).
        Unknown names raise ``ValueError``. With ``debounce_ms=0`` or no running asyncio
        loop, the recompute is done when this returns; otherwise call :meth:`flush` to compute
        now. Returns ``self``.
        """
        changed = self._apply(params)
        if changed:
            self._request()
        return self

    def flush(self) -> InteractiveFigure:
        """Run a pending (debounced) compute now, if there is one. Returns ``self``."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._run()
        return self

    def recompute(self) -> InteractiveFigure:
        """Compute and draw now with the current values (synchronously)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._run()
        return self

    def display(self) -> None:
        """Show the widget in the notebook."""
        from IPython.display import display

        display(self.ui)

    def _repr_mimebundle_(self, **kwargs):
        return self.ui._repr_mimebundle_(**kwargs)

    # ----- machinery ----------------------------------------------------------------------
    def _apply(self, params: dict[str, Any]) -> bool:
        unknown = sorted(set(params) - set(self.controls))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {unknown}; this widget's controls are {list(self.controls)}"
            )
        changed = False
        self._suspended = True
        try:
            for name, value in params.items():
                control = self.controls[name]
                before = control.value
                control.value = _snap(control, value)
                changed = changed or control.value != before
        finally:
            self._suspended = False
        return changed

    def _on_change(self, change) -> None:
        if not self._suspended:
            self._request()

    def _request(self) -> None:
        """A control changed: compute now, or after the debounce window."""
        loop = None
        if self.debounce_ms > 0:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        if loop is None:
            self._run()
            return
        if self._timer is not None:
            self._timer.cancel()
        self._set_busy(True)
        self._timer = loop.call_later(self.debounce_ms / 1000.0, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._run()

    def _run(self) -> None:
        params = self.params
        self._set_busy(True)
        if self.disable_while_busy:
            self._set_disabled(True)
        start = time.perf_counter()
        try:
            with torch_threads(self.compute_threads):
                state = self.compute(**params)
                with self.figure.batch_update():
                    self.draw(state)
            self._sync_figure_model()
        except Exception as exc:  # shown in the status area, logged, kept: never swallowed
            self.error = exc
            self.error_traceback = traceback.format_exc()
            log.error("%s failed for %r:\n%s", type(self).__name__, params, self.error_traceback)
            self.n_computes += 1
            self._set_status("error", f"{type(exc).__name__}: {exc}")
        else:
            self.state = state
            self.error = None
            self.error_traceback = None
            self.n_computes += 1
            self.last_compute_s = time.perf_counter() - start
            self._set_status("ready", f"ready ({self.last_compute_s:.2f} s)")
        finally:
            if self.disable_while_busy:
                self._set_disabled(False)
            self._set_busy(False)

    def _sync_figure_model(self) -> None:
        """Store the drawn figure in the FigureWidget's synced model state.

        plotly sends edits to the views that exist as transient restyle/relayout messages and
        copies the figure into its model (``_widget_data``, ``_widget_layout``) only in its own
        ``_repr_mimebundle_``, which never runs for a figure inside a box. A view made later
        (the first display of ``ui``, a page reload, Voilà) would then show the figure as it
        was built, not as drawn. The front end does not redraw on this change (plotly's
        ``do_data``/``do_layout`` are no-ops): it only keeps the model current for new views.
        """
        fig = self.figure
        if hasattr(fig, "_widget_data") and hasattr(fig, "_layout_obj"):
            fig._widget_layout = copy.deepcopy(fig._layout_obj._props)
            fig._widget_data = copy.deepcopy(fig._data)

    def _set_busy(self, busy: bool) -> None:
        if busy and not self.busy:
            self.busy = True
            self.ui.add_class("otkit-busy")
            self._set_status("busy", "computing…")
        elif not busy and self.busy:
            self.busy = False
            self.ui.remove_class("otkit-busy")

    def _set_disabled(self, disabled: bool) -> None:
        for control in self.controls.values():
            control.disabled = disabled

    def _set_status(self, kind: str, text: str) -> None:
        style = {
            "busy": "color:#666", "error": "color:#c00;font-weight:bold", "ready": "color:#666"
        }
        self.status.value = (
            f'<span class="otkit-status-{kind}" data-computes="{self.n_computes}" '
            f'style="{style[kind]}">{html.escape(text)}</span>'
        )


# ------------------------------------------------------------------ shared by widgets

#: The widgets' figure margins (px); a widget overrides single sides.
MARGIN = {"l": 60, "r": 30, "t": 80, "b": 40}

#: Where a widget's legend stands: a row under the plots, a row over them, or inside the
#: top-right or bottom-right corner of the plotting area.
LEGENDS = {
    "below": {"orientation": "h", "yanchor": "top", "y": -0.1, "x": 0.0},
    "above": {"orientation": "h", "yanchor": "bottom", "y": 1.06, "x": 0.0},
    "corner": {"x": 1.0, "y": 1.0, "xanchor": "right"},
    "lower corner": {"x": 1.0, "y": 0.0, "xanchor": "right", "yanchor": "bottom"},
}


def figure_widget(fig: go.Figure, title: str, *, height: int, margin: dict | None = None,
                  legend: str | None = "below", **layout) -> go.FigureWidget:
    """``fig`` with the widgets' common layout, as the ``FigureWidget`` ``make_figure`` returns.

    Every widget's figure is white (``plotly_white``), ``height`` px high, with a centred
    ``title`` (a placeholder until the first draw sets ``layout.title.text``) and the
    :data:`MARGIN` margins, single sides overridden by ``margin``. ``legend`` is a key of
    :data:`LEGENDS`, or ``None`` for no legend. ``layout`` goes to ``update_layout`` as is
    (e.g. ``barmode="group"``, or ``legend_y=-0.14`` to move a legend under taller axes).
    """
    check_choice("legend", legend, (*LEGENDS, None))
    if legend is None:
        layout = {"showlegend": False, **layout}
    else:
        layout = {"legend": dict(LEGENDS[legend]), **layout}
    fig.update_layout(
        height=height, margin={**MARGIN, **(margin or {})}, template="plotly_white",
        title={"text": title, "x": 0.5, "xanchor": "center"}, **layout,
    )
    return FollowWidthFigureWidget(fig)


#: Appended to plotly's widget bundle: its default export (the anywidget factory), wrapped so
#: that each view watches its element with a ResizeObserver and redraws at the element's
#: width when that differs from the drawn one. plotly's own view under anywidget sizes the plot
#: once, at ``newPlot``: JupyterLab renders the view before attaching it to the page, so the
#: plot kept plotly's default 700 px in a ~970 px output area; Voilà attaches first, so the
#: plot had the right width but kept it through window resizes. The redraw goes through
#: plotly's own responsive handler (``config.responsive``, set by the Python class), which
#: calls ``Plotly.Plots.resize`` of the bundle's plotly (not whichever ``window.Plotly``).
_FOLLOW_WIDTH_JS = """
function __otkitFollowWidth(factory) {
  return () => {
    const inner = typeof factory === "function" ? factory() : factory;
    return {
      ...inner,
      render(context) {
        const stop = inner.render(context);
        const el = context.el;
        const fit = () => {
          const full = el._fullLayout;
          if (!full || !el.isConnected || !el._responsiveChartHandler) return;
          if (el.layout && el.layout.width) return;  // a fixed width stays
          const width = parseFloat(window.getComputedStyle(el).width);
          if (width > 0 && Math.abs(width - full.width) > 1) el._responsiveChartHandler();
        };
        const observer = new ResizeObserver(fit);
        observer.observe(el);
        if (typeof el.on === "function") el.on("plotly_afterplot", fit);
        return () => {
          observer.disconnect();
          if (typeof stop === "function") stop();
        };
      },
    };
  };
}
"""

#: The bundle's closing export statement and the name exported as default.
_EXPORTS = re.compile(r"export\s*\{([^{}]*)\}")
_DEFAULT = re.compile(r"([\w$]+)\s+as\s+default\b")


@functools.cache
def _follow_width_esm() -> str:
    """plotly's widget bundle with its default export wrapped by :data:`_FOLLOW_WIDTH_JS`.

    Should a later plotly ship a bundle of another shape (no ``export{… as default}`` at its
    end), the bundle is returned as is, with a warning in the log: the figure then keeps
    plotly's own sizing (and the browser tests' width check fails).
    """
    bundle = str(go.FigureWidget._esm)  # anywidget's file contents: the text of the bundle
    exports = list(_EXPORTS.finditer(bundle))
    default = _DEFAULT.search(exports[-1].group(1)) if exports else None
    if default is None:
        log.warning("plotly's widget bundle has no default export where expected: figures "
                    "keep plotly's sizing (700 px wide in JupyterLab)")
        return bundle
    last = exports[-1]
    names = last.group(1)
    names = names[:default.start()] + "__otkitFigure as default" + names[default.end():]
    return (bundle[:last.start()] + "export{" + names + "}" + bundle[last.end():]
            + "\n" + _FOLLOW_WIDTH_JS
            + f"\nconst __otkitFigure = __otkitFollowWidth({default.group(1)});\n")


class FollowWidthFigureWidget(go.FigureWidget):
    """A plotly ``FigureWidget`` whose views fill their output area's width and follow it.

    Its front end is plotly's own, with each view redrawn whenever its element's width changes
    (:data:`_FOLLOW_WIDTH_JS`): on being attached to the page (JupyterLab renders a view before
    attaching it, at plotly's default 700 px), on a window resize, on a side panel opening.
    A figure with a fixed ``layout.width`` keeps it.
    """

    @property
    def _esm(self) -> str:  # read once by anywidget.AnyWidget.__init__, turned into a trait
        return _follow_width_esm()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._config = {**self._config, "responsive": True}


def rows_with_gaps(values) -> list[list[float | None]]:
    """A 2-D array (a heatmap's ``z``) as lists of floats, NaN as ``None``.

    plotly sends a 2-D array to the browser as nested lists in JSON, which has no NaN: the
    kernel warns on the page ("Out of range float values are not JSON compliant"). ``None``
    travels as ``null``, which plotly draws as a gap, as it would NaN.
    """
    return [[None if math.isnan(v) else v for v in row] for row in values.tolist()]


def seed_control(value: int = 0) -> ipw.BoundedIntText:
    """The widgets' ``seed`` box: an integer in [0, 2³¹ − 1], 130 px wide."""
    return ipw.BoundedIntText(
        value=value, min=0, max=2**31 - 1, description="seed",
        layout=ipw.Layout(width="130px"), style={"description_width": "initial"},
    )


def fixed(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals, a value that rounds to zero printed as ``0.000…``,
    never ``-0.000…`` (e.g. an entropy of −1e-9 from rounding)."""
    return f"{value:z.{digits}f}"


def _stat(name: str, label: str, value, text: str, title: str = "") -> str:
    """One stat of a widget's stats line: ``<span class="otkit-stat otkit-stat-<name>">``.

    ``data-value`` holds ``value`` for tests and scripts to read; the page shows ``label``
    and ``text`` in bold; ``title`` (if any) is the hover text.
    """
    attr = f' title="{html.escape(title)}"' if title else ""
    return (
        f'<span class="otkit-stat otkit-stat-{name}" data-value="{html.escape(str(value))}"{attr}>'
        f"{label} <b>{html.escape(text)}</b></span>"
    )


#: Warnings a widget shows in its stats instead of letting them escape to the page.
RECORDED_WARNINGS = (ConvergenceWarning, RuntimeWarning)


def recorded_warnings(caught: list[warnings.WarningMessage]) -> tuple[str, ...]:
    """The messages of the recorded warnings; any other warning is passed on."""
    messages = []
    for w in caught:
        if issubclass(w.category, RECORDED_WARNINGS):
            messages.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return unique_messages(tuple(messages))


def unique_messages(messages: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(messages))  # e.g. one warning from each of several calls


class FitCache:
    """A least-recently-used store of expensive results (fits, solves), keyed by their arguments.

    Widgets keep one so that moving a cheap knob (a level, a point) or returning to an earlier
    setting redraws without recomputing.

    Args:
        maxsize: results kept.

    Attributes:
        hits, misses: lookups served from the store, and fits computed.
    """

    def __init__(self, maxsize: int = 16) -> None:
        self.maxsize = check_count("maxsize", maxsize)
        self._fits: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._fits)

    def get(self, key: Hashable, make: Callable[[], Any]) -> tuple[Any, bool]:
        """The fit stored under ``key``, else ``make()`` stored; returns ``(fit, was_cached)``."""
        if key in self._fits:
            self._fits.move_to_end(key)
            self.hits += 1
            return self._fits[key], True
        fit = make()  # a failing fit stores nothing
        self.misses += 1
        self._fits[key] = fit
        if len(self._fits) > self.maxsize:
            self._fits.popitem(last=False)
        return fit, False

    def drop(self, where: Callable[[Hashable], bool]) -> int:
        """Remove the results whose key satisfies ``where``; returns how many."""
        keys = [key for key in self._fits if where(key)]
        for key in keys:
            del self._fits[key]
        return len(keys)

    def clear(self) -> None:
        self._fits.clear()
