// Manual chart corners: click four points on the photo (or type them) and start a new job with them.

import { clear, field, h, svg } from "../dom.js";

const ORDER = ["first (by the dark-skin patch)", "second", "third", "fourth"];

/**
 * `imageUrl` may be null when the browser cannot show the photo (TIFF); the number fields still
 * work. `offered` ([[x, y], ×4], optional) places the corners already, to confirm or move.
 * `onSubmit(corners)` receives [[x, y], ×4] in image pixels; the form waits for the promise it returns.
 */
export function cornerPicker({ imageUrl, onSubmit, offered = null }) {
  const points = offered ? offered.map(([x, y]) => [x, y]) : [];
  let size = null;
  const inputs = ORDER.map((_, i) => [
    h("input", { type: "number", step: "any", min: 0, name: `x${i}`, inputmode: "decimal", required: true, class: "corner-input" }),
    h("input", { type: "number", step: "any", min: 0, name: `y${i}`, inputmode: "decimal", required: true, class: "corner-input" }),
  ]);
  const marks = svg("svg", { class: "corner-marks", preserveAspectRatio: "none", "aria-hidden": "true", focusable: "false" });
  const submit = h("button", { type: "submit", class: "primary" }, "Correct with these corners");
  /** What sending is doing, or why it cannot start: the fields it checks may be folded away. */
  const progress = h("p", { class: "corner-status", role: "status", id: "corner-status" });

  function drawMarks() {
    clear(marks);
    if (!size) return;
    const radius = Math.max(size[0], size[1]) / 120;
    if (points.length > 1) {
      marks.append(svg(points.length === 4 ? "polygon" : "polyline", { class: "corner-path", points: points.map(([x, y]) => `${x},${y}`).join(" "), "stroke-width": radius / 2 }));
    }
    points.forEach(([x, y], i) => {
      marks.append(
        svg("circle", { class: "corner-dot", cx: x, cy: y, r: radius }),
        svg("text", { class: "corner-number", x, y: y + radius * 0.4, "font-size": radius * 1.2, "text-anchor": "middle" }, i + 1),
      );
    });
  }

  function fillInputs() {
    inputs.forEach(([x, y], i) => {
      x.value = points[i] ? points[i][0].toFixed(1) : "";
      y.value = points[i] ? points[i][1].toFixed(1) : "";
    });
  }

  function readInputs() {
    points.length = 0;
    for (const [x, y] of inputs) {
      if (x.value === "" || y.value === "") break;
      points.push([Number(x.value), Number(y.value)]);
    }
    drawMarks();
  }
  inputs.flat().forEach((input) => input.addEventListener("change", readInputs));

  let picture = null;
  if (imageUrl) {
    const image = h("img", { src: imageUrl, alt: "The photo: click the chart's four corners", draggable: "false" });
    image.addEventListener("load", () => {
      size = [image.naturalWidth, image.naturalHeight];
      marks.setAttribute("viewBox", `0 0 ${size[0]} ${size[1]}`);
      drawMarks();
    });
    picture = h("div", { class: "corner-picture", id: "corner-picture" }, image, marks);
    picture.addEventListener("click", (event) => {
      if (!size || points.length >= 4) return;
      const box = image.getBoundingClientRect();
      points.push([
        ((event.clientX - box.left) / box.width) * size[0],
        ((event.clientY - box.top) / box.height) * size[1],
      ]);
      fillInputs();
      drawMarks();
    });
  }

  const grid = h(
    "div",
    { class: "corner-grid" },
    inputs.map(([x, y], i) =>
      h("fieldset", { class: "corner" }, h("legend", {}, `Corner ${i + 1}: ${ORDER[i]}`), field("x (pixels)", x), field("y (pixels)", y)),
    ),
  );
  const form = h(
    "form",
    { class: "corner-form", id: "corner-form", novalidate: true },
    picture,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", onclick: () => { points.pop(); fillInputs(); drawMarks(); } }, "Undo last corner"),
      h("button", { type: "button", onclick: () => { points.length = 0; fillInputs(); drawMarks(); } }, "Start again"),
    ),
    h("details", { class: "corner-numbers", open: !imageUrl }, h("summary", {}, "Corner positions in pixels"), grid),
    h("div", { class: "actions" }, submit),
    progress,
  );
  fillInputs();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    readInputs();
    if (points.length < 4) {
      progress.textContent = `Mark all four corners first: ${points.length} of 4 marked.`;
      return;
    }
    // Sending uploads the photo again, which takes a while on a slow line: one click sends once.
    submit.disabled = true;
    form.setAttribute("aria-busy", "true");
    progress.textContent = "Sending the photo again with these corners…";
    try {
      await onSubmit(points.map(([x, y]) => [x, y]));
    } finally {
      submit.disabled = false;
      form.removeAttribute("aria-busy");
      progress.textContent = "";
    }
  });
  return form;
}
