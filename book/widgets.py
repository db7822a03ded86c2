"""Knob panels: change a measurement's settings and run it again.

A panel needs a running kernel. In the published HTML there is none, so
each panel also carries an HTML note saying what it does and how to use
it; the book's configuration shows that note instead of an empty box.
"""

import html
import threading
import traceback
from collections.abc import Callable

import ipywidgets as widgets

from book import plots


class Progress:
    """What a run function uses to report: steps done and figures so far."""

    def __init__(self, bar: widgets.IntProgress, status: widgets.HTML, out):
        self._bar = bar
        self._status = status
        self._out = out

    def step(self, done: int, total: int, text: str) -> None:
        self._bar.max = max(total, 1)
        self._bar.value = done
        self._status.value = html.escape(text)

    def plot(self, fig, caption: str) -> None:
        # Set the outputs directly: this runs on a worker thread, where the
        # Output widget's context manager cannot capture display calls.
        self._out.outputs = (
            {
                "output_type": "display_data",
                "data": plots.bundle(fig, caption),
                "metadata": {},
            },
        )


class Panel:
    """Knobs, a Run button, a progress bar and a plot that fills as it runs."""

    def __init__(
        self,
        title: str,
        knobs: dict[str, widgets.ValueWidget],
        run: Callable[[dict, Progress], None],
        note: str,
    ):
        self.title = title
        self.knobs = knobs
        self.note = note
        self._run = run
        self._button = widgets.Button(description="Run", button_style="primary")
        self._bar = widgets.IntProgress(value=0, min=0, max=1)
        self._status = widgets.HTML("Set the knobs, then press Run.")
        self._out = widgets.Output()
        self._button.on_click(self._clicked)
        self._lock = threading.Lock()
        self.box = widgets.VBox(
            [
                widgets.HTML(f"<b>{html.escape(title)}</b>"),
                *knobs.values(),
                widgets.HBox([self._button, self._bar]),
                self._status,
                self._out,
            ]
        )

    def values(self) -> dict:
        return {name: knob.value for name, knob in self.knobs.items()}

    def _clicked(self, _button) -> None:
        if not self._lock.acquire(blocking=False):
            return  # a run is already going
        self._button.disabled = True
        threading.Thread(target=self._run_once, daemon=True).start()

    def _run_once(self) -> None:
        progress = Progress(self._bar, self._status, self._out)
        try:
            self._run(self.values(), progress)
            self._status.value += " Done."
        except Exception as error:  # shown to the reader, not swallowed
            detail = "".join(traceback.format_exception_only(error)).strip()
            self._status.value = f"<b>Run failed:</b> {html.escape(detail)}"
        finally:
            self._button.disabled = False
            self._lock.release()

    def _repr_mimebundle_(self, **kwargs):
        data = self.box._repr_mimebundle_(**kwargs)
        knob_list = ", ".join(self.knobs)
        data["text/html"] = (
            '<div class="admonition note rewrite-lab-panel">'
            f'<p class="admonition-title">Interactive: {html.escape(self.title)}</p>'
            f"<p>{html.escape(self.note)} Knobs: {html.escape(knob_list)}. "
            "This panel needs a running kernel: open the notebook in JupyterLab "
            "(<code>make lab</code>) and press Run.</p></div>"
        )
        data["text/plain"] = f"[panel] {self.title}: knobs {knob_list}"
        return data
