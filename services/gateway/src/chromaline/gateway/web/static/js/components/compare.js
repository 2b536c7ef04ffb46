// A before/after comparison: the corrected photo over the original, revealed up to a slider.

import { h, svg } from "../dom.js";

/** The detected chart as SVG in image pixels: its outline and each measured patch. */
export function chartOverlay(measurements) {
  const [width, height] = measurements.image_size;
  const overlay = svg("svg", {
    class: "chart-overlay",
    viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: "none",
    "aria-hidden": "true",
    focusable: "false",
  });
  const stroke = Math.max(width, height) / 400;
  for (const patch of measurements.patches) {
    overlay.append(
      svg("polygon", {
        class: patch.used_in_fit ? "patch-outline" : "patch-outline excluded",
        points: patch.quad.map(([x, y]) => `${x},${y}`).join(" "),
        "stroke-width": stroke,
      }),
    );
  }
  if (measurements.corners) {
    overlay.append(
      svg("polygon", {
        class: "chart-outline",
        points: measurements.corners.map(([x, y]) => `${x},${y}`).join(" "),
        "stroke-width": stroke * 2,
      }),
    );
  }
  return overlay;
}

/** What the lines over the photo mean; `excluded` says whether any patch was left out. */
function outlineLegend(excluded) {
  const entry = (kind, text) =>
    h(
      "li",
      {},
      svg("svg", { class: "legend-line", viewBox: "0 0 28 10", "aria-hidden": "true", focusable: "false" }, svg("line", { class: kind, x1: 1, y1: 5, x2: 27, y2: 5 })),
      text,
    );
  return h(
    "ul",
    { class: "outline-legend", "aria-label": "What the lines on the photo mean" },
    entry("chart-outline", "The chart as found"),
    entry("patch-outline", "Patches measured"),
    excluded ? entry("patch-outline excluded", "Patches left out (clipped, uneven or too dark)") : null,
  );
}

/** Display width: the frame fits the screen's height and width and never enlarges the photo. */
function fittedWidth(width, height) {
  const ratio = (width / height).toFixed(4);
  return `min(100%, ${width / devicePixelRatio}px, calc(72svh * ${ratio}))`;
}

const GRAB_DISTANCE_PX = 24;

/**
 * The corrected photo alone, with the chart outlined, when the original is in a format browsers
 * do not show (TIFF, RAW, HEIC…) but the corrected image is a JPEG or PNG. `format` names the
 * original's format in the caption.
 */
export function correctedOnly({ afterUrl, size, overlay, format, excluded = false }) {
  const [width, height] = size;
  const frame = h(
    "div",
    { class: "compare compare-single", style: { aspectRatio: `${width} / ${height}`, width: fittedWidth(width, height) } },
    h("img", { src: afterUrl, alt: "Corrected photo", draggable: "false" }),
    overlay,
  );
  return h(
    "figure",
    { class: "comparison" },
    h("div", { class: "compare-viewport" }, frame),
    h(
      "figcaption",
      { class: "muted" },
      `The original (${format}) is not shown here: browsers show only JPEG and PNG. Download it below.`,
    ),
    overlay ? outlineLegend(excluded) : null,
  );
}

/**
 * The before/after viewer: `beforeUrl` and `afterUrl` are image URLs; `size` is [width, height]
 * in pixels; `focus` an optional [x, y] to centre on at actual size (the chart). The divider is
 * the handle (drag it, or the photo when it fits the screen); the range input carries the
 * keyboard. "Actual size" shows one image pixel per screen pixel, scrolling inside the viewer.
 */
/** `overlay` (null when the photo has no chart of its own) outlines what was measured, with a legend. */
export function comparison({ beforeUrl, afterUrl, size, overlay, focus, excluded = false }) {
  const [width, height] = size;
  const afterLayer = h("div", { class: "compare-after" }, h("img", { src: afterUrl, alt: "Corrected photo", draggable: "false" }));
  const divider = h("div", { class: "compare-divider", "aria-hidden": "true" }, h("span", { class: "compare-grip" }));
  const frame = h(
    "div",
    { class: "compare", style: { aspectRatio: `${width} / ${height}`, width: fittedWidth(width, height) } },
    h("img", { src: beforeUrl, alt: "Original photo", draggable: "false", class: "compare-before" }),
    afterLayer,
    overlay,
    divider,
    h("span", { class: "compare-label compare-label-before", "aria-hidden": "true" }, "Before"),
    h("span", { class: "compare-label compare-label-after", "aria-hidden": "true" }, "After"),
  );
  const viewport = h("div", { class: "compare-viewport", id: "compare-viewport" }, frame);
  const slider = h("input", {
    type: "range",
    min: 0,
    max: 100,
    step: 1,
    value: 50,
    id: "compare-slider",
    class: "compare-slider",
    "aria-label": "Divider between the original (left) and the corrected photo (right), in percent",
  });
  const zoom = h("button", { type: "button", id: "compare-zoom", "aria-pressed": "false" }, "Actual size (1:1)");

  function place(percent) {
    afterLayer.style.clipPath = `inset(0 0 0 ${percent}%)`;
    divider.style.left = `${percent}%`;
  }
  slider.addEventListener("input", () => place(Number(slider.value)));

  function zoomed() {
    return zoom.getAttribute("aria-pressed") === "true";
  }
  zoom.addEventListener("click", () => {
    const on = !zoomed();
    zoom.setAttribute("aria-pressed", String(on));
    zoom.textContent = on ? "Fit to screen" : "Actual size (1:1)";
    viewport.classList.toggle("zoomed", on);
    frame.style.width = on ? `${width / devicePixelRatio}px` : fittedWidth(width, height);
    if (on) {
      viewport.setAttribute("tabindex", "0");
      viewport.setAttribute("role", "region");
      viewport.setAttribute("aria-label", "Photo at actual size; scroll to move around");
      const [x, y] = focus || [width / 2, height / 2];
      viewport.scrollLeft = x / devicePixelRatio - viewport.clientWidth / 2;
      viewport.scrollTop = y / devicePixelRatio - viewport.clientHeight / 2;
    } else {
      for (const name of ["tabindex", "role", "aria-label"]) viewport.removeAttribute(name);
    }
  });

  let dragging = false;
  function follow(event) {
    const box = frame.getBoundingClientRect();
    const percent = Math.round(Math.min(1, Math.max(0, (event.clientX - box.left) / box.width)) * 100);
    slider.value = String(percent);
    place(percent);
  }
  frame.addEventListener("pointerdown", (event) => {
    const line = divider.getBoundingClientRect();
    if (zoomed() && Math.abs(event.clientX - line.left) > GRAB_DISTANCE_PX) return;
    dragging = true;
    frame.setPointerCapture(event.pointerId);
    follow(event);
  });
  frame.addEventListener("pointermove", (event) => {
    if (dragging) follow(event);
  });
  frame.addEventListener("pointerup", () => {
    dragging = false;
  });
  place(50);

  return h(
    "figure",
    { class: "comparison" },
    viewport,
    h("div", { class: "compare-controls" }, slider, zoom),
    h("figcaption", { class: "muted" }, "Left of the line: the original. Right: corrected. Drag the line, or use the slider."),
    overlay ? outlineLegend(excluded) : null,
  );
}
