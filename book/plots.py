"""Plotly figures: the article's figure beside the one measured here.

Plots only read results; they never measure. `show` emits each figure as
plotly's own JSON (JupyterLab draws it) and as an HTML div that expects
plotly.js to be on the page already: the published book loads plotly.js
once per page from its own static files, so it works offline and no figure
carries its own copy of the library.
"""

import html
import json

import plotly.graph_objects as go
import plotly.io as pio

from book import machine

ARTICLE_COLOUR = "#9e9e9e"
LEGACY_COLOUR = "#d95f02"
RUST_COLOUR = "#1b9e77"
GO_COLOUR = "#7570b3"
COLOURS = {
    "article": ARTICLE_COLOUR,
    "php": LEGACY_COLOUR,
    "java": LEGACY_COLOUR,
    "python": LEGACY_COLOUR,
    "rust": RUST_COLOUR,
    "go": GO_COLOUR,
}
FIGURE_CONFIG = {"displaylogo": False, "responsive": True}


def bundle(fig: go.Figure, caption: str) -> dict:
    """The mime bundle for a figure and its caption."""
    div = pio.to_html(
        fig, include_plotlyjs=False, full_html=False, config=FIGURE_CONFIG
    )
    return {
        "application/vnd.plotly.v1+json": {
            **json.loads(pio.to_json(fig, validate=False)),
            "config": FIGURE_CONFIG,
        },
        "text/html": (
            f'<figure class="rewrite-lab-figure">{div}'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        ),
        "text/plain": f"[figure] {caption}",
    }


def show(fig: go.Figure, caption: str) -> None:
    """Display a figure with its caption, in Jupyter and in the HTML book."""
    from IPython.display import display

    display(bundle(fig, caption), raw=True)


def _layout(fig: go.Figure, title: str, fingerprint: dict | None, **axes) -> None:
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left"},
        template="plotly_white",
        height=420,
        margin={"l": 60, "r": 20, "t": 70, "b": 90},
        legend={"orientation": "h", "y": -0.22},
        **axes,
    )
    if fingerprint:
        fig.add_annotation(
            text=f"measured on: {html.escape(machine.label(fingerprint))}",
            xref="paper",
            yref="paper",
            x=0,
            y=-0.36,
            showarrow=False,
            font={"size": 10, "color": "#555"},
            xanchor="left",
        )


def claim_beside_measured(
    the_claim,
    legacy_measured: float,
    replacement_measured: float,
    verdict,
    fingerprint: dict,
    scale: float = 1.0,
    unit: str | None = None,
) -> go.Figure:
    """Two bars per side: what the article says and what this machine did.

    `scale` converts the claim's unit for display (1/MiB to show bytes as
    MiB, say), so both bars share one axis.
    """
    names = [the_claim.legacy, the_claim.replacement]
    fig = go.Figure()
    if the_claim.legacy_value is not None:
        fig.add_bar(
            name=f"the article ({the_claim.hardware})",
            x=names,
            y=[the_claim.legacy_value * scale, the_claim.replacement_value * scale],
            marker_color=ARTICLE_COLOUR,
        )
    fig.add_bar(
        name="measured on this machine",
        x=names,
        y=[legacy_measured * scale, replacement_measured * scale],
        marker_color=[LEGACY_COLOUR, RUST_COLOUR],
        text=[
            f"{value * scale:,.0f}" for value in (legacy_measured, replacement_measured)
        ],
        textposition="outside",
    )
    title = (
        f"{the_claim.metric}: the article's ratio {verdict.claimed_ratio:.1f}x, "
        f"measured {verdict.measured_ratio:.1f}x: <b>{verdict.word}</b>"
    )
    _layout(
        fig,
        title,
        fingerprint,
        barmode="group",
        yaxis_title=unit or the_claim.unit,
    )
    return fig


def curves(
    series: dict[str, tuple[list, list]],
    title: str,
    x_title: str,
    y_title: str,
    fingerprint: dict | None,
    log_x: bool = False,
    colours: dict[str, str] | None = None,
    dash: dict[str, str] | None = None,
) -> go.Figure:
    """One line per series: {name: (xs, ys)}."""
    fig = go.Figure()
    for name, (xs, ys) in series.items():
        fig.add_scatter(
            x=xs,
            y=ys,
            name=name,
            mode="lines+markers",
            line={
                "color": (colours or {}).get(name),
                "dash": (dash or {}).get(name, "solid"),
            },
        )
    _layout(
        fig,
        title,
        fingerprint,
        xaxis_title=x_title,
        yaxis_title=y_title,
        xaxis_type="log" if log_x else "linear",
    )
    return fig
