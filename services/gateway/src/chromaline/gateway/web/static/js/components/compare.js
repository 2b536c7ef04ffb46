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

/**
 * The slider: `beforeUrl` and `afterUrl` are image URLs; `size` is [width, height] in pixels.
 * The range input carries the keyboard; dragging on the photos moves it too.
 */
export function comparison({ beforeUrl, afterUrl, size, overlay }) {
  const [width, height] = size;
  const afterLayer = h("div", { class: "compare-after" }, h("img", { src: afterUrl, alt: "Corrected photo", draggable: "false" }));
  const divider = h("div", { class: "compare-divider", "aria-hidden": "true" });
  const frame = h(
    "div",
    { class: "compare", style: { aspectRatio: `${width} / ${height}` } },
    h("img", { src: beforeUrl, alt: "Original photo", draggable: "false", class: "compare-before" }),
    afterLayer,
    overlay,
    divider,
    h("span", { class: "compare-label compare-label-before", "aria-hidden": "true" }, "Before"),
    h("span", { class: "compare-label compare-label-after", "aria-hidden": "true" }, "After"),
  );
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

  function place(percent) {
    afterLayer.style.clipPath = `inset(0 0 0 ${percent}%)`;
    divider.style.left = `${percent}%`;
  }
  slider.addEventListener("input", () => place(Number(slider.value)));

  let dragging = false;
  function follow(event) {
    const box = frame.getBoundingClientRect();
    const percent = Math.round(Math.min(1, Math.max(0, (event.clientX - box.left) / box.width)) * 100);
    slider.value = String(percent);
    place(percent);
  }
  frame.addEventListener("pointerdown", (event) => {
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

  return h("figure", { class: "comparison" }, frame, slider, h("figcaption", { class: "muted" }, "Left of the line: the original. Right: corrected. Drag the photo or use the slider."));
}
