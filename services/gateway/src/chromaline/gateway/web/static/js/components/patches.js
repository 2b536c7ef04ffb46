// Per-patch ΔE: a table with swatches, and bars of ΔE before and after drawn as SVG.

import { formatNumber, h, rgb, svg } from "../dom.js";

const FLAG_WORDS = {
  clipped: "clipped",
  non_uniform: "uneven",
  outside_frame: "outside the photo",
  dark: "too dark",
};

function swatch(colour, label) {
  return h("span", { class: "swatch", style: { backgroundColor: rgb(colour) }, title: `${label}: ${rgb(colour)}`, role: "img", "aria-label": `${label} ${rgb(colour)}` });
}

export function patchTable(measurements) {
  const rows = measurements.patches.map((patch) =>
    h(
      "tr",
      { dataset: { patch: patch.index }, class: patch.used_in_fit ? "" : "excluded" },
      h("td", { class: "num", dataset: { label: "#" } }, patch.index + 1),
      h("th", { scope: "row" }, patch.name),
      h("td", { class: "num de-before", dataset: { label: "ΔE₀₀ before" } }, formatNumber(patch.delta_e2000[0])),
      h("td", { class: "num de-after", dataset: { label: "ΔE₀₀ after" } }, formatNumber(patch.delta_e2000[1])),
      h("td", { class: "swatches", dataset: { label: "Reference · before · after" } }, swatch(patch.reference_srgb, "Reference"), swatch(patch.before_srgb, "Before"), swatch(patch.after_srgb, "After")),
      h("td", { dataset: { label: "In fit" } }, patch.used_in_fit ? "Yes" : "No"),
      h("td", { dataset: { label: "Flags" } }, patch.flags.map((flag) => FLAG_WORDS[flag] || flag).join(", ") || "—"),
    ),
  );
  const scroller = h(
    "div",
    { class: "table-scroll card-table", tabindex: "0", role: "region", "aria-label": "Per-patch ΔE table" },
    h(
      "table",
      { class: "patch-table", id: "patch-table" },
      h("caption", { class: "visually-hidden" }, "ΔE₀₀ per patch, with swatches of the reference, the measured colour before and after correction"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col", class: "num" }, "#"),
          h("th", { scope: "col" }, "Patch"),
          h("th", { scope: "col", class: "num" }, "ΔE₀₀ before"),
          h("th", { scope: "col", class: "num" }, "ΔE₀₀ after"),
          h("th", { scope: "col" }, "Reference · before · after"),
          h("th", { scope: "col" }, "In fit"),
          h("th", { scope: "col" }, "Flags"),
        ),
      ),
      h("tbody", {}, rows),
    ),
  );
  return [h("p", { class: "muted", "aria-hidden": "true" }, "Swatches: the reference colour, as measured before, and after correction. Greyed rows were left out of the fit."), scroller];
}

/** A round tick step giving about five ticks up to `maximum`, and the decimals it needs to print exactly. */
export function niceStep(maximum) {
  const rough = maximum / 5;
  const exponent = Math.floor(Math.log10(rough));
  const [multiple, extra] = [[1, 0], [2, 0], [2.5, 1], [5, 0], [10, -1]].find(([m]) => m * 10 ** exponent >= rough);
  return { step: multiple * 10 ** exponent, digits: Math.max(0, extra - exponent) };
}

/** Grouped bars per patch; the table above holds the same numbers for screen readers. */
export function deltaChart(measurements) {
  const patches = measurements.patches;
  const values = patches.flatMap((patch) => patch.delta_e2000);
  const { step, digits } = niceStep(Math.max(1, ...values));
  const ticks = Math.ceil(Math.max(1, ...values) / step - 1e-9);
  const top = ticks * step;
  const group = 30;
  const margin = { left: 52, right: 10, top: 12, bottom: 34 };
  const plotHeight = 200;
  const width = margin.left + margin.right + patches.length * group;
  const height = margin.top + plotHeight + margin.bottom;
  const y = (value) => margin.top + plotHeight - (value / top) * plotHeight;
  const chart = svg("svg", {
    class: "delta-chart",
    id: "delta-chart",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `ΔE₀₀ before and after correction for ${patches.length} patches`,
  });
  chart.style.minWidth = `${Math.round(width * 0.8)}px`;
  chart.style.maxWidth = `${Math.round(width * 1.25)}px`;
  for (let i = 0; i <= ticks; i++) {
    const tick = i * step;
    chart.append(
      svg("line", { class: "grid-line", x1: margin.left, x2: width - margin.right, y1: y(tick), y2: y(tick) }),
      svg("text", { class: "axis-label y-tick", x: margin.left - 6, y: y(tick) + 4, "text-anchor": "end" }, formatNumber(tick, digits)),
    );
  }
  chart.append(
    svg("text", { class: "axis-title", x: -(margin.top + plotHeight / 2), y: 14, transform: "rotate(-90)", "text-anchor": "middle" }, "ΔE₀₀"),
  );
  patches.forEach((patch, i) => {
    const x = margin.left + i * group + 4;
    const [before, after] = patch.delta_e2000;
    chart.append(
      svg("rect", { class: "bar-before", x, y: y(before), width: 11, height: y(0) - y(before) }, svg("title", {}, `${patch.name}: before ${formatNumber(before)}`)),
      svg("rect", { class: "bar-after", x: x + 11, y: y(after), width: 11, height: y(0) - y(after) }, svg("title", {}, `${patch.name}: after ${formatNumber(after)}`)),
      svg("text", { class: "axis-label", x: x + 11, y: y(0) + 14, "text-anchor": "middle" }, i + 1),
    );
  });
  chart.append(
    svg("text", { class: "axis-title", x: margin.left, y: height - 4 }, "Patch number"),
  );
  const legend = h(
    "p",
    { class: "legend" },
    h("span", { class: "key key-before", "aria-hidden": "true" }),
    " Before correction ",
    h("span", { class: "key key-after", "aria-hidden": "true" }),
    " After correction",
  );
  return h("figure", { class: "chart-figure" }, h("div", { class: "chart-scroll", tabindex: "0", role: "region", "aria-label": "ΔE₀₀ per patch chart; scroll sideways on a narrow screen" }, chart), legend);
}
