"""Measuring each patch: a robust mean of its central region, its spread, and why it may be unreliable.

Only the pixels inside each patch's quad are read and linearised (through the image's lookup
tables), never the whole image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate, pairwise
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from chromaline.common.events.contracts import PatchSample
from chromaline.engine.charts import Edition, reference_names
from chromaline.engine.detect import ChartDetection
from chromaline.engine.geometry import chart_layout, layout_patch_quads
from chromaline.engine.image_io import DecodedImage, channel_tables, linearise_pixels

PatchFlag = Literal["clipped", "non_uniform", "outside_frame", "dark"]

MAD_TO_SIGMA = 1.4826
TRIM = 0.1
CLIPPED_FRACTION = TRIM
"""A patch is clipped when, in one of its channels, more than this share of its pixels touch an
end of the code range.
The robust mean leaves out the lowest and highest ``TRIM`` of each channel, so below that share
the clipped values are among those left out and the mean is unbiased; above it they pull the
mean towards the limit, and the patch says less than its true colour."""
DARK_LEVEL = 0.003
"""Linear level under which a patch carries too little signal to fit on."""
BELOW_BLACK_FRACTION = TRIM
"""A RAW patch is dark when, in one of its channels, more than this share of its pixels sit at
black: the sensor's noise reaches below the black level there and LibRaw clamps it to zero, so
that channel's mean is noise, not light. It is not clipping: the light is not too strong, it is
too weak to tell from the noise."""
UNIFORMITY_GRID = 3
MIN_CELL_PIXELS = 16
SHADING_TOLERANCE = 0.06
"""Largest difference between the patch's cell means, as a share of its level, still called flat."""
SHADING_OFFSET = 0.002
GLARE_RATIO = 1.3
GLARE_OFFSET = 0.02


@dataclass(frozen=True)
class PatchMeasurement:
    index: int
    name: str
    rgb: NDArray[np.float64]
    """(3,) robust mean, linear working-space light."""
    spread: NDArray[np.float64]
    """(3,) robust standard deviation (1.4826 · MAD)."""
    flags: list[PatchFlag] = field(default_factory=list)
    quad: NDArray[np.float64] = field(default_factory=lambda: np.zeros((4, 2)))
    """(4, 2) the sampled region's corners in image pixels."""

    def as_sample(self) -> PatchSample:
        """This measurement as the ``chart.detected`` event carries it."""
        rgb, spread = self.rgb.tolist(), self.spread.tolist()
        return PatchSample(
            index=self.index,
            name=self.name,
            rgb=(rgb[0], rgb[1], rgb[2]),
            spread=(spread[0], spread[1], spread[2]),
            flags=list(self.flags),
            quad=[(float(x), float(y)) for x, y in self.quad],
        )


def _region(
    quad: NDArray[np.float64], height: int, width: int
) -> tuple[slice, slice, NDArray[np.bool_]] | None:
    """Bounding box of the quad inside the image and the quad's mask over it."""
    left = max(int(np.floor(quad[:, 0].min())), 0)
    top = max(int(np.floor(quad[:, 1].min())), 0)
    right = min(int(np.ceil(quad[:, 0].max())) + 1, width)
    bottom = min(int(np.ceil(quad[:, 1].max())) + 1, height)
    if right <= left or bottom <= top:
        return None
    mask = np.zeros((bottom - top, right - left), dtype=np.uint8)
    shift = 4
    points = np.round((quad - [left, top]) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(mask, [points], 1, lineType=cv2.LINE_8, shift=shift)
    return slice(top, bottom), slice(left, right), mask.astype(bool)


@dataclass(frozen=True)
class _ChannelStatistics:
    mean: NDArray[np.float64]
    """(3,) mean of each channel once the lowest and highest ``TRIM`` share are left out."""
    spread: NDArray[np.float64]
    """(3,) 1.4826 · the median absolute deviation."""


def _median_of_sorted(ordered: NDArray[np.float32]) -> NDArray[np.float64]:
    count = ordered.shape[1]
    low, high = ordered[:, (count - 1) // 2], ordered[:, count // 2]
    return np.asarray((low.astype(np.float64) + high) / 2.0, dtype=np.float64)


def _channel_statistics(linear: NDArray[np.float32]) -> _ChannelStatistics:
    """Trimmed mean and MAD per channel from sorted channel rows.

    NumPy sorts contiguous float32 rows with SIMD, several times faster than it partitions them
    or sorts the interleaved pixels' columns.
    """
    ordered = np.sort(np.ascontiguousarray(linear.T), axis=1)
    count = ordered.shape[1]
    cut = _trim_count(count)
    mean = ordered[:, cut : count - cut].mean(axis=1, dtype=np.float64)
    median = _median_of_sorted(ordered)
    deviations = np.sort(np.abs(ordered - median.astype(np.float32)[:, None]), axis=1)
    spread = MAD_TO_SIGMA * _median_of_sorted(deviations)
    return _ChannelStatistics(mean, spread)


def _trim_count(count: int) -> int:
    cut = int(count * TRIM)
    return 0 if count <= 2 * cut else cut


@dataclass(frozen=True)
class _SortedCounts:
    """A sample held as its distinct values in ascending order and how often each occurs."""

    values: NDArray[np.float32]
    ends: NDArray[np.int64]
    """Running total of the counts: value ``i`` fills sorted positions ``ends[i-1]`` to ``ends[i]``."""

    @classmethod
    def of(cls, values: NDArray[np.float32], counts: NDArray[np.int64]) -> _SortedCounts:
        present = np.flatnonzero(counts)
        order = np.argsort(values[present], kind="stable")
        return cls(values[present][order], np.cumsum(counts[present][order]))

    def at(self, positions: NDArray[np.int64]) -> NDArray[np.float32]:
        """The values at these positions of the sorted sample."""
        return self.values[np.searchsorted(self.ends, positions, side="right")]

    def median(self) -> float:
        count = int(self.ends[-1])
        low, high = self.at(np.array([(count - 1) // 2, count // 2]))
        return (float(low) + float(high)) / 2.0

    def trimmed_mean(self, cut: int) -> float:
        count = int(self.ends[-1])
        starts = self.ends - np.diff(self.ends, prepend=0)
        kept = np.clip(np.minimum(self.ends, count - cut) - np.maximum(starts, cut), 0, None)
        return float(np.dot(self.values.astype(np.float64), kept) / (count - 2 * cut))


def _channel_statistics_of_codes(
    codes: NDArray[np.uint8] | NDArray[np.uint16], tables: NDArray[np.float32]
) -> _ChannelStatistics:
    """The same statistics as :func:`_channel_statistics` of ``tables[c][codes[:, c]]``, from code counts.

    A channel's linear value depends on its code alone, so the sorted sample is the histogram of
    codes ordered by value: counting replaces the sorts and the result is the same.
    """
    if codes.dtype == np.uint8:
        return _channel_statistics_of_bytes(np.asarray(codes, dtype=np.uint8), tables)
    cut = _trim_count(len(codes))
    means, spreads = np.empty(3), np.empty(3)
    for channel in range(3):
        # Counted from the lowest code present: a patch spans few of a 16-bit image's codes.
        channel_codes = codes[:, channel]
        lowest = int(channel_codes.min())
        counts = np.bincount(channel_codes - channel_codes.dtype.type(lowest))
        values = tables[channel, lowest : lowest + len(counts)]
        level = _SortedCounts.of(values, counts)
        means[channel] = level.trimmed_mean(cut)
        median = np.float32(level.median())
        deviations = _SortedCounts.of(np.abs(values - median), counts)
        spreads[channel] = MAD_TO_SIGMA * deviations.median()
    return _ChannelStatistics(means, spreads)


def _ranked(
    values: NDArray[np.floating], counts: NDArray[np.int64], position: NDArray[np.int64]
) -> NDArray[np.floating]:
    """Each row's value at its ``position`` (one per row) of its sorted sample, rows given as
    values in ascending order and their counts."""
    index = np.argmax(np.cumsum(counts, axis=1) > position[:, None], axis=1)
    return np.asarray(values[np.arange(len(values)), index])


def _rows_median(
    values: NDArray[np.float32], counts: NDArray[np.int64], count: NDArray[np.int64]
) -> NDArray[np.float64]:
    low = _ranked(values, counts, (count - 1) // 2).astype(np.float64)
    return np.asarray((low + _ranked(values, counts, count // 2)) / 2.0, dtype=np.float64)


def _sorted_rows(
    values: NDArray[np.float32], counts: NDArray[np.int64]
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    order = np.argsort(values, axis=1, kind="stable")
    return np.take_along_axis(values, order, axis=1), np.take_along_axis(counts, order, axis=1)


def _byte_histograms(codes: NDArray[np.uint8]) -> NDArray[np.int64]:
    """(3, 256) counts of each channel's 8-bit codes."""
    image = codes.reshape(-1, 1, 3)
    # OpenCV's histogram of 8-bit data is several times faster than NumPy's bincount.
    histograms = [cv2.calcHist([image], [channel], None, [256], [0, 256]) for channel in range(3)]
    return np.stack([np.asarray(histogram).reshape(256) for histogram in histograms]).astype(np.int64)


def _channel_statistics_of_bytes(codes: NDArray[np.uint8], tables: NDArray[np.float32]) -> _ChannelStatistics:
    """:func:`_channel_statistics_of_codes` for 8-bit codes."""
    return _statistics_of_histograms(_byte_histograms(codes)[None], tables)[0]


def _statistics_of_histograms(
    histograms: NDArray[np.int64], tables: NDArray[np.float32]
) -> list[_ChannelStatistics]:
    """The channel statistics of several patches from their (P, 3, 256) code counts, every
    patch's channels as rows of one table: a chart's patches take one NumPy call per step, not
    one per patch."""
    patches = len(histograms)
    counts = histograms.reshape(3 * patches, 256)
    count = counts.sum(axis=1)
    cut = (count * TRIM).astype(np.int64)
    cut = np.where(count <= 2 * cut, 0, cut)
    order = np.argsort(tables, axis=1, kind="stable")
    values = np.tile(np.take_along_axis(tables, order, axis=1), (patches, 1))
    ordered_counts = np.take_along_axis(counts, np.tile(order, (patches, 1)), axis=1)
    ends = np.cumsum(ordered_counts, axis=1)
    kept = np.clip(
        np.minimum(ends, (count - cut)[:, None]) - np.maximum(ends - ordered_counts, cut[:, None]), 0, None
    )
    mean = np.sum(values.astype(np.float64) * kept, axis=1) / (count - 2 * cut)
    median = _rows_median(values, ordered_counts, count)
    all_tables = np.tile(tables, (patches, 1))
    deviations, deviation_counts = _sorted_rows(
        np.abs(all_tables - median.astype(np.float32)[:, None]), counts
    )
    spread = MAD_TO_SIGMA * _rows_median(deviations, deviation_counts, count)
    return [
        _ChannelStatistics(
            np.asarray(mean[3 * patch : 3 * patch + 3], dtype=np.float64),
            np.asarray(spread[3 * patch : 3 * patch + 3], dtype=np.float64),
        )
        for patch in range(patches)
    ]


def _cell_means(luminance: NDArray[np.float32], mask: NDArray[np.bool_]) -> list[float]:
    """Mean luminance of each cell of a 3×3 split of the sampled region (cells mostly inside it)."""
    plane = np.zeros(mask.shape, dtype=np.float32)
    plane[mask] = luminance
    means = []
    for rows in _sections(mask.shape[0]):
        for columns in _sections(mask.shape[1]):
            inside = mask[rows, columns]
            count = int(np.count_nonzero(inside))
            if count >= MIN_CELL_PIXELS and count >= 0.5 * inside.size:
                means.append(float(plane[rows, columns].sum()) / count)
    return means


def _sections(length: int) -> list[slice]:
    """``length`` split into ``UNIFORMITY_GRID`` runs as even as possible, longer ones first."""
    size, extra = divmod(length, UNIFORMITY_GRID)
    bounds = accumulate((size + (1 if i < extra else 0) for i in range(UNIFORMITY_GRID)), initial=0)
    return [slice(start, stop) for start, stop in pairwise(bounds)]


SELECTION_BINS = 1024


def _order_statistics(values: NDArray[np.float32], ranks: list[int]) -> list[float]:
    """The values at these ranks of ``values`` sorted, without sorting or partitioning them all.

    The values are binned over their range (binning keeps their order: a bin's values are all at
    least those of the bins below it), the bin holding each rank is found from the counts, and
    only that bin's few values are partitioned.
    """
    lowest, highest = values.min(), values.max()
    if highest <= lowest:
        return [float(lowest)] * len(ranks)
    scale = np.float32(SELECTION_BINS / (float(highest) - float(lowest)))
    bins = np.minimum(((values - lowest) * scale).astype(np.intp), SELECTION_BINS - 1)
    counts = np.bincount(bins, minlength=SELECTION_BINS)
    ends = np.cumsum(counts)
    found = []
    for rank in ranks:
        selected = int(np.searchsorted(ends, rank, side="right"))
        within = rank - int(ends[selected] - counts[selected])
        found.append(float(np.partition(values[bins == selected], within)[within]))
    return found


def _percentiles(values: NDArray[np.float32], quantiles: tuple[float, ...]) -> list[float]:
    """``np.percentile(values, quantiles)`` (linear interpolation, NumPy's own arithmetic), from
    :func:`_order_statistics`: several times faster on a patch's many tied values."""
    count = len(values)
    indices = [(count - 1) * (quantile / 100.0) for quantile in quantiles]
    lows = [int(np.floor(index)) for index in indices]
    ranks = sorted({rank for low in lows for rank in (low, min(low + 1, count - 1))})
    at = dict(zip(ranks, _order_statistics(values, ranks), strict=True))
    results = []
    for index, low in zip(indices, lows, strict=True):
        below, above = np.float32(at[low]), np.float32(at[min(low + 1, count - 1)])
        difference = float(above - below)
        weight = index - low
        results.append(
            float(above) - difference * (1.0 - weight)
            if weight >= 0.5
            else float(below) + difference * weight
        )
    return results


def _is_non_uniform(linear: NDArray[np.float32], mask: NDArray[np.bool_]) -> bool:
    """Shading across the patch (shadow, occlusion, light fall-off) or a highlight over part of it.

    Judged on the means of the patch's cells, not on the pixel spread: sensor and JPEG noise make
    single pixels differ a lot on a flat patch, but average out within each cell.
    """
    luminance = _luminance(linear)
    median, high = _percentiles(luminance, (50.0, 98.0))
    if high > GLARE_RATIO * median + GLARE_OFFSET:
        return True
    cells = _cell_means(luminance, mask)
    if len(cells) < 2:
        return False
    level = max(float(np.mean(cells)), 0.01)
    return max(cells) - min(cells) > SHADING_TOLERANCE * level + SHADING_OFFSET


_CHANNEL_MEAN = np.full((1, 3), 1.0 / 3.0, dtype=np.float32)


def _luminance(linear: NDArray[np.float32]) -> NDArray[np.float32]:
    """The mean of each pixel's three channels (one OpenCV pass; NumPy's mean over axis 1 is slow)."""
    rows = np.ascontiguousarray(linear, dtype=np.float32).reshape(-1, 1, 3)
    return np.asarray(cv2.transform(rows, _CHANNEL_MEAN), dtype=np.float32).reshape(-1)


def _inner_codes(low: float, high: float) -> tuple[int, int]:
    """The integer codes strictly between ``low`` and ``high``, as an inclusive range."""
    return int(np.floor(low) + 1), int(np.ceil(high) - 1)


def _clip_fraction(codes: NDArray[np.number], low: float, high: float) -> float:
    """The largest share, over the three channels, of pixels at or below ``low`` or at or above
    ``high``: each channel's robust mean is trimmed on its own."""
    if codes.dtype in (np.uint8, np.uint16):
        # Integer codes strictly between the ends, counted by cv2.inRange channel by channel:
        # several times faster than NumPy's comparisons and reductions.
        inner_low, inner_high = _inner_codes(low, high)
        channels = cv2.split(np.ascontiguousarray(codes).reshape(len(codes), 1, -1))
        inside = min(cv2.countNonZero(cv2.inRange(channel, inner_low, inner_high)) for channel in channels)
        return 1.0 - inside / len(codes)
    at_ends = (codes <= low) | (codes >= high)
    return float(at_ends.mean(axis=0).max())


def _clip_fraction_of_histogram(histogram: NDArray[np.int64], low: float, high: float) -> float:
    """:func:`_clip_fraction` of 8-bit codes from their (3, 256) counts."""
    inner_low, inner_high = _inner_codes(low, high)
    inside = int(histogram[:, inner_low : inner_high + 1].sum(axis=1).min())
    return 1.0 - inside / int(histogram[0].sum())


def _masked_pixels(region: NDArray[Any], mask: NDArray[np.bool_]) -> NDArray[Any]:
    """(N, 3) pixels of ``region`` under ``mask``, each pixel gathered as one opaque item: ten
    times faster than NumPy's boolean indexing over the first two axes of an (H, W, 3) array."""
    contiguous = np.ascontiguousarray(region)
    pixel = np.dtype((np.void, 3 * contiguous.itemsize))
    gathered = contiguous.view(pixel).reshape(mask.shape)[mask]
    return np.asarray(gathered.view(contiguous.dtype).reshape(-1, 3), dtype=contiguous.dtype)


@dataclass(frozen=True)
class _Gathered:
    """One patch's pixels under its quad, before any statistic."""

    index: int
    name: str
    quad: NDArray[np.float64]
    inside: bool
    mask: NDArray[np.bool_] | None
    """None when the quad covers no pixel of the image."""
    values: NDArray[Any] | None
    """(N, 3) the pixels under the mask: codes of a decoded image, or linear values."""


def _gather(
    image: DecodedImage | NDArray[np.floating], index: int, name: str, quad: NDArray[np.float64]
) -> _Gathered:
    pixels = image.pixels if isinstance(image, DecodedImage) else np.asarray(image)
    height, width = pixels.shape[:2]
    inside = bool(np.all((quad >= 0) & (quad <= [width - 1, height - 1])))
    region = _region(quad, height, width)
    if region is None or not region[2].any():
        return _Gathered(index, name, quad, inside, None, None)
    rows, columns, mask = region
    return _Gathered(index, name, quad, inside, mask, _masked_pixels(pixels[rows, columns], mask))


@dataclass(frozen=True)
class _Statistics:
    channels: _ChannelStatistics
    clip_fraction: float
    linear: NDArray[np.float32]
    below_black_fraction: float = 0.0
    """Share of pixels at black in the patch's darkest channel: linear camera RGB (RAW) only."""


def _patch_statistics(
    image: DecodedImage | NDArray[np.floating], patches: list[_Gathered]
) -> list[_Statistics]:
    """Statistics of the patches with pixels: the 8-bit codes of a decoded image from their
    histograms, all patches at once; anything else patch by patch."""
    sampled = [patch.values for patch in patches if patch.values is not None]
    if not isinstance(image, DecodedImage):
        return [
            _Statistics(
                _channel_statistics(values.astype(np.float32)),
                _clip_fraction(values, 0.0, 0.999),
                values.astype(np.float32),
            )
            for values in sampled
        ]
    top_code = image.max_code
    low, high = top_code * 0.002, top_code * 0.995
    linear = [linearise_pixels(image, codes.reshape(1, -1, 3)).reshape(-1, 3) for codes in sampled]
    tables = channel_tables(image)
    if tables is None:
        return [
            _Statistics(_channel_statistics(values), _clip_fraction(codes, low, high), values)
            for codes, values in zip(sampled, linear, strict=True)
        ]
    if image.linear_camera:
        # RAW codes at the bottom are sensor noise clamped at the black level, not clipped light.
        return [
            _Statistics(
                _channel_statistics_of_codes(codes, tables),
                _clip_fraction(codes, -1.0, high),
                values,
                _clip_fraction(codes, low, top_code + 1.0),
            )
            for codes, values in zip(sampled, linear, strict=True)
        ]
    if image.pixels.dtype != np.uint8:
        return [
            _Statistics(_channel_statistics_of_codes(codes, tables), _clip_fraction(codes, low, high), values)
            for codes, values in zip(sampled, linear, strict=True)
        ]
    histograms = (
        np.stack([_byte_histograms(codes) for codes in sampled])
        if sampled
        else np.zeros((0, 3, 256), np.int64)
    )
    channels = _statistics_of_histograms(histograms, tables)
    return [
        _Statistics(statistics, _clip_fraction_of_histogram(histogram, low, high), values)
        for statistics, histogram, values in zip(channels, histograms, linear, strict=True)
    ]


def _measurement(patch: _Gathered, statistics: _Statistics | None) -> PatchMeasurement:
    flags: list[PatchFlag] = [] if patch.inside else ["outside_frame"]
    if statistics is None or patch.mask is None:
        nan = np.full(3, np.nan)
        return PatchMeasurement(patch.index, patch.name, nan, nan, flags, patch.quad)
    mean = statistics.channels.mean
    if statistics.clip_fraction > CLIPPED_FRACTION:
        flags.append("clipped")
    if _is_non_uniform(statistics.linear, patch.mask):
        flags.append("non_uniform")
    if float(mean.max()) < DARK_LEVEL or statistics.below_black_fraction > BELOW_BLACK_FRACTION:
        flags.append("dark")
    return PatchMeasurement(patch.index, patch.name, mean, statistics.channels.spread, flags, patch.quad)


ENCODED_MARGIN = 0.25
"""The share of each patch side left out on each side of a photo's patch: its centre quarter is
measured, away from the edges a camera's sharpening and a box a pixel off reach into."""
RAW_MARGIN = 0.15
"""The same for a RAW file's camera RGB, which no camera has denoised: half the patch's area is
measured, so its noise averages out. On the synthetic 6 MP DNGs of ``bench/formats.py accuracy``
(three cameras under six lights each), the mean leave-one-out ΔE2000 fell from 1.89 to 1.61 on the
Digital SG and from 1.62 to 1.50 on the Classic 24, most on the Foveon-type camera, whose
overlapping sensitivities make its matrix magnify noise; on the real JPEGs (at the annotated
corners) the wider centre gained nothing (3.69 against 3.67)."""


def sample_patches(
    image: DecodedImage | NDArray[np.floating],
    detection: ChartDetection,
    *,
    margin: float | None = None,
    edition: Edition = "2014",
) -> list[PatchMeasurement]:
    """Measure every patch of a detected chart.

    ``image`` is either the decoded image (preferred: clipping is judged on its codes) or an
    already linear float image. ``margin`` is the share of each patch side left out on each side;
    by default :data:`RAW_MARGIN` for a RAW file's camera RGB, :data:`ENCODED_MARGIN` otherwise.
    """
    if margin is None:
        raw = isinstance(image, DecodedImage) and image.linear_camera
        margin = RAW_MARGIN if raw else ENCODED_MARGIN
    names = reference_names(detection.chart_type, edition)
    layout = detection.layout or chart_layout(detection.chart_type)
    return sample_quads(image, names, layout_patch_quads(layout, detection.corners, margin))


def sample_quads(
    image: DecodedImage | NDArray[np.floating], names: Sequence[str], quads: NDArray[np.float64]
) -> list[PatchMeasurement]:
    """Measure the patches in ``quads`` (image pixels), one per name, in order."""
    patches = [_gather(image, i, name, quad) for i, (name, quad) in enumerate(zip(names, quads, strict=True))]
    statistics = iter(_patch_statistics(image, patches))
    return [_measurement(patch, next(statistics) if patch.values is not None else None) for patch in patches]
