"""The report's pictures of a chart's colours, drawn with matplotlib.

- the a*b* chromaticity plane, an arrow per patch from where it was measured to where it belongs,
  before and after correction;
- the tone response of the neutral patches: measured L* against reference L*;
- each patch's reference colour beside its corrected colour;
- ΔE2000 per patch, before and after.

Every figure is a ``matplotlib.figure.Figure`` on the Agg canvas (never pyplot), so drawing keeps
no global state and is safe in worker threads. ``svg_bytes`` and ``png_bytes`` encode one.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from chromaline.common.measurements import PatchResult

BEFORE_COLOUR = "#a6a6a6"
AFTER_COLOUR = "#1f5fa8"
EXCLUDED_COLOUR = "#d9822b"
NEUTRAL_CHROMA = 6.0
"""A patch whose reference C*ab is below this is neutral (the grey ramp of every chart)."""
MIN_TONE_PATCHES = 2
"""Fewest neutral patches that make a tone response."""
NAMED_TICKS_UP_TO = 40
"""Charts with more patches than this are labelled by patch number instead of name."""
WIDE = (11.69, 8.27)
NAME_TICK_POINTS = 8.0
"""The size of the ΔE chart's patch names, set upright under their bars."""
PAIRS_PER_ROW = 8
PAIR_POINTS = 6.5
"""The size of the name and ΔE written under each pair."""
PAIR_NAME_POINTS = 72.0
"""The widest a name under a pair may be: the Classic 24's longest ("neutral 3.5 (1.05 D)")."""
NAME_TICK_WIDEST_POINTS = 110.0
"""The widest a name under a bar of the ΔE chart may be, so that the bars keep most of its height."""


def new_figure(size: tuple[float, float]) -> Figure:
    """A figure on its own Agg canvas (no pyplot, no global state), without a layout engine: its
    axes are placed at fixed positions (:func:`place_axes`), so drawing it never measures text."""
    figure = Figure(figsize=size, layout=None)
    FigureCanvasAgg(figure)
    return figure


# Room for text round the axes, from matplotlib's default sizes (in points) rather than measured at
# draw time: solving the constrained layout was about a third of a report's CPU.
POINTS_PER_INCH = 72.0
FONT_POINTS = 10.0
"""Tick labels and axis labels ("medium")."""
TITLE_POINTS = 12.0
"""Axes titles and the figure's suptitle ("large")."""
LINE_HEIGHT = 1.25
"""A line of DejaVu Sans, ascent and descent, in ems."""
NUMBER_ADVANCE = 0.7
"""Room per character of a number, in ems: DejaVu Sans's digits are 0.64 em, its minus sign 0.84."""
UPPER_CASE_ADVANCE = 0.8
LOWER_CASE_ADVANCE = 0.6
DIGIT_ADVANCE = 0.64
OTHER_ADVANCE = 0.4
"""Spaces and punctuation, most of them narrower."""
WIDE_ADVANCE = 1.05
"""The widest Latin letters (W is 1.03 em) and any character outside ASCII that is not a cased
letter (CJK ideographs are a full em)."""
WIDE_LETTERS = frozenset("WMmw@%")
TICK_SPACE = 7.0
"""Tick length (3.5 pt) and the pad between tick and label (3.5 pt)."""
LABEL_PAD = 4.0
TITLE_PAD = 6.0
EDGE = 6.0
"""Blank space kept between any text and the figure's edge."""


@dataclass(frozen=True)
class Margins:
    """The blank space round an axes, in inches: where its ticks, labels and titles go."""

    left: float
    bottom: float
    right: float
    top: float


def _inches(points: float) -> float:
    return points / POINTS_PER_INCH


def _line(points: float) -> float:
    return LINE_HEIGHT * points


def label_margin(tick_label_depth: float) -> float:
    """The room beside an axis for its tick labels, ``tick_label_depth`` points deep, and its axis label."""
    return _inches(TICK_SPACE + tick_label_depth + LABEL_PAD + _line(FONT_POINTS) + EDGE)


def overhang_margin(characters: int) -> float:
    """The room right of an axes for half of a number centred on its last tick."""
    return _inches(number_width(characters) / 2 + EDGE)


def number_width(characters: int) -> float:
    """The room, in points, for a number of ``characters`` characters as a tick label."""
    return characters * NUMBER_ADVANCE * FONT_POINTS


def text_width(text: str, points: float) -> float:
    """A generous estimate of the width, in points, of ``text`` set in DejaVu Sans."""
    return sum(_advance(character) for character in text) * points


def _advance(character: str) -> float:
    """A generous estimate of one character's advance in DejaVu Sans, in ems."""
    if character in WIDE_LETTERS or not (character.isascii() or character.isupper() or character.islower()):
        return WIDE_ADVANCE
    if character.isupper():
        return UPPER_CASE_ADVANCE
    if character.islower():
        return LOWER_CASE_ADVANCE
    if character.isdigit():
        return DIGIT_ADVANCE
    return OTHER_ADVANCE


def shortened(name: str, points: float, widest: float) -> str:
    """``name`` as written in a figure: cut short with an ellipsis when, set at ``points``, it would
    be wider than ``widest`` points (a custom chart's sample ids run to 64 characters)."""
    if text_width(name, points) <= widest:
        return name
    while name and text_width(name + "…", points) > widest:
        name = name[:-1]
    return name + "…"


def title_margin(titles: int) -> float:
    """The room above an axes for ``titles`` lines of title (its own, and the figure's)."""
    return _inches(titles * (_line(TITLE_POINTS) + TITLE_PAD) + EDGE)


def place_axes(figure: Figure, margins: Margins, columns: int = 1) -> list[Axes]:
    """Axes side by side in ``columns`` equal columns of the figure, each inset by ``margins``.

    An axes with an equal aspect shrinks to fit and stays centred in its box, so its labels keep
    their room."""
    width, height = figure.get_size_inches()
    column_width = width / columns
    axes_width = column_width - margins.left - margins.right
    axes_height = height - margins.bottom - margins.top
    return [
        figure.add_axes(
            (
                (column * column_width + margins.left) / width,
                margins.bottom / height,
                axes_width / width,
                axes_height / height,
            )
        )
        for column in range(columns)
    ]


def _unit(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    return (rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0)


def chromaticity_figure(patches: Sequence[PatchResult]) -> Figure:
    """Two a*b* planes side by side: arrows from each measured colour to its reference, before and after."""
    figure = new_figure((11.69, 6.2))
    reference = np.array([patch.reference_lab for patch in patches])
    measured = {
        "Before correction": np.array([patch.before_lab for patch in patches]),
        "After correction": np.array([patch.after_lab for patch in patches]),
    }
    extent = max(20.0, float(np.abs(np.concatenate([reference, *measured.values()])[:, 1:]).max()) * 1.1)
    colours = [_unit(patch.reference_srgb) for patch in patches]
    margins = Margins(
        left=label_margin(number_width(4)),
        bottom=label_margin(_line(FONT_POINTS)),
        right=overhang_margin(3),
        top=title_margin(2),
    )
    for axes, (title, points) in zip(place_axes(figure, margins, columns=2), measured.items(), strict=True):
        axes.axhline(0, color="#cccccc", linewidth=0.8)
        axes.axvline(0, color="#cccccc", linewidth=0.8)
        axes.quiver(
            points[:, 1],
            points[:, 2],
            reference[:, 1] - points[:, 1],
            reference[:, 2] - points[:, 2],
            color=[AFTER_COLOUR if patch.used_in_fit else EXCLUDED_COLOUR for patch in patches],
            angles="xy",
            scale_units="xy",
            scale=1.0,
            width=0.003,
            headwidth=4.0,
            headlength=5.0,
            headaxislength=4.5,
        )
        axes.scatter(
            points[:, 1], points[:, 2], s=14, color="#333333", marker="x", linewidths=0.8, label="Measured"
        )
        axes.scatter(
            reference[:, 1],
            reference[:, 2],
            s=42,
            c=colours,
            edgecolors="#333333",
            linewidths=0.6,
            label="Reference",
        )
        axes.set_xlim(-extent, extent)
        axes.set_ylim(-extent, extent)
        axes.set_aspect("equal")
        axes.set_xlabel("a*  (green − / red +)")
        axes.set_ylabel("b*  (blue − / yellow +)")
        axes.set_title(title)
        axes.legend(loc="lower right", fontsize=8)
    figure.suptitle(
        "Chart colours in the a*b* plane: each arrow goes from the measured colour to the reference",
        y=1.0 - _inches(EDGE) / figure.get_figheight(),
    )
    return figure


def neutral_patches(patches: Sequence[PatchResult]) -> list[PatchResult]:
    """The grey patches, darkest last as on the chart: reference chroma below ``NEUTRAL_CHROMA``."""
    return [
        patch
        for patch in patches
        if math.hypot(patch.reference_lab[1], patch.reference_lab[2]) < NEUTRAL_CHROMA
    ]


def tone_response_figure(patches: Sequence[PatchResult]) -> Figure | None:
    """Measured L* of the neutral patches against their reference L*, before and after; None without neutrals."""
    neutrals = sorted(neutral_patches(patches), key=lambda patch: patch.reference_lab[0])
    if len(neutrals) < MIN_TONE_PATCHES:
        return None
    figure = new_figure((7.0, 6.5))
    margins = Margins(
        left=label_margin(number_width(3)),
        bottom=label_margin(_line(FONT_POINTS)),
        right=overhang_margin(3),
        top=title_margin(1),
    )
    [axes] = place_axes(figure, margins)
    reference = [patch.reference_lab[0] for patch in neutrals]
    axes.plot(
        [0, 100], [0, 100], color="#999999", linestyle="--", linewidth=1, label="Ideal (measured = reference)"
    )
    for field, marker, colour, label in (
        ("before_lab", "o-", BEFORE_COLOUR, "Before correction"),
        ("after_lab", "s-", AFTER_COLOUR, "After correction"),
    ):
        measured = [getattr(patch, field)[0] for patch in neutrals]
        axes.plot(reference, measured, marker, color=colour, label=label)
    axes.set_xlim(0, 100)
    axes.set_ylim(0, 100)
    axes.set_aspect("equal")
    axes.set_xlabel("Reference lightness L*")
    axes.set_ylabel("Measured lightness L*")
    axes.set_title(f"Tone response of the {len(neutrals)} neutral patches")
    axes.grid(color="#e5e5e5")
    axes.legend(loc="upper left")
    return figure


def patch_pairs_figure(patches: Sequence[PatchResult]) -> Figure:
    """Each patch as a pair of squares: its reference colour on the left, the corrected one on the right.

    The figure is as tall as its rows at the width's scale, so the squares fill it without blank bands."""
    rows = math.ceil(len(patches) / PAIRS_PER_ROW)
    edge = _inches(EDGE)
    margins = Margins(left=edge, bottom=edge, right=edge, top=title_margin(1))
    x_limits = (-0.2, PAIRS_PER_ROW * 2.4)
    y_limits = (-(rows - 1) * 1.3 - 0.4, 1.1)
    width = 11.69
    inches_per_unit = (width - margins.left - margins.right) / (x_limits[1] - x_limits[0])
    height = (y_limits[1] - y_limits[0]) * inches_per_unit + margins.bottom + margins.top
    figure = new_figure((width, height))
    [axes] = place_axes(figure, margins)
    for position, patch in enumerate(patches):
        row, column = divmod(position, PAIRS_PER_ROW)
        x = column * 2.4
        y = -row * 1.3
        axes.add_patch(Rectangle((x, y), 1, 1, color=_unit(patch.reference_srgb)))
        axes.add_patch(Rectangle((x + 1, y), 1, 1, color=_unit(patch.after_srgb)))
        axes.add_patch(Rectangle((x, y), 2, 1, fill=False, edgecolor="#555555", linewidth=0.6))
        label = (
            shortened(patch.name, PAIR_POINTS, PAIR_NAME_POINTS)
            if len(patches) <= NAMED_TICKS_UP_TO
            else str(patch.index + 1)
        )
        axes.text(
            x + 1,
            y - 0.08,
            f"{label}  ΔE {patch.delta_e2000[1]:.1f}",
            ha="center",
            va="top",
            fontsize=PAIR_POINTS,
            parse_math=False,
        )
    axes.set_xlim(*x_limits)
    axes.set_ylim(*y_limits)
    axes.set_aspect("equal")
    axes.axis("off")
    axes.set_title(
        "Reference (left) and corrected (right) colour of each patch, with ΔE2000 after correction"
    )
    return figure


def delta_e_figure(patches: Sequence[PatchResult]) -> Figure:
    """Grouped bars of ΔE2000 per patch, before and after; patches left out of the fit stand out."""
    figure = new_figure(WIDE)
    named = len(patches) <= NAMED_TICKS_UP_TO
    names = [shortened(patch.name, NAME_TICK_POINTS, NAME_TICK_WIDEST_POINTS) for patch in patches]
    tick_depth = max(text_width(name, NAME_TICK_POINTS) for name in names) if named else _line(FONT_POINTS)
    margins = Margins(
        left=label_margin(number_width(4)),
        bottom=label_margin(tick_depth),
        right=_inches(EDGE),
        top=title_margin(1),
    )
    [axes] = place_axes(figure, margins)
    positions = np.arange(len(patches), dtype=np.float64)
    width = 0.4
    before = [patch.delta_e2000[0] for patch in patches]
    after = [patch.delta_e2000[1] for patch in patches]
    before_bars = axes.bar(positions - width / 2, before, width, color=BEFORE_COLOUR, label="Before")
    after_bars = axes.bar(positions + width / 2, after, width, color=AFTER_COLOUR, label="After")
    excluded = [bar for bar, patch in zip(after_bars, patches, strict=True) if not patch.used_in_fit]
    for bar in excluded:
        bar.set_color(EXCLUDED_COLOUR)
        bar.set_hatch("//")
        bar.set_edgecolor("#5c3300")
    if excluded:
        excluded[0].set_label("After (left out of the fit)")
    axes.set_ylabel("ΔE2000 (CIEDE2000)")
    axes.yaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10]))
    axes.set_ylim(bottom=0)
    axes.set_title("ΔE2000 per patch, before and after correction")
    if named:
        axes.set_xticks(positions, names, rotation=90, fontsize=NAME_TICK_POINTS, parse_math=False)
        axes.set_xlabel("Patch")
    else:
        step = 10
        axes.set_xticks(positions[::step], [str(patch.index + 1) for patch in patches[::step]])
        axes.set_xlabel("Patch number")
    axes.set_xlim(-0.75, len(patches) - 0.25)
    axes.grid(axis="y", color="#dddddd")
    axes.set_axisbelow(True)
    axes.legend(handles=[before_bars, after_bars, *excluded[:1]])
    return figure


def png_bytes(figure: Figure, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def svg_bytes(figure: Figure) -> bytes:
    """The figure as SVG, its text kept as text (``svg.fonttype`` none) rather than drawn as glyph
    outlines: half the size, and about a fifth less time to write."""
    buffer = io.BytesIO()
    with rc_context({"svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()
