// Custom charts: the organisation's own chart definitions (a layout and a CGATS.17 file of the
// patches' reference values), listed, added, downloaded and deleted.

import { call, download } from "../api.js";
import { clear, field, formatDate, h, notice } from "../dom.js";
import { describe, handleSubmit } from "../forms.js";
import { href } from "../router.js";
import { currentMembership } from "../session.js";

const CGATS_FILES = ".txt,.cgats,.cgt,.cie,.it8,.ti3,text/plain";

/** "5 × 7 patches · Lab, D50": what a chart is, in one line. */
function chartFacts(chart) {
  const space = chart.colour_space === "LAB" ? "Lab" : "XYZ";
  const light = chart.illuminant ? `, ${chart.illuminant}` : ", D50 (none named)";
  return `${chart.rows} × ${chart.columns} patches · ${space}${light} · added ${formatDate(chart.created_at)}`;
}

function chartItem(chart, status, mayChange) {
  async function remove() {
    if (!window.confirm(`Delete the chart “${chart.name}”? Photos already sent with it are still corrected with it.`)) return;
    clear(status);
    try {
      await call(`charts/${chart.id}`, { method: "DELETE" });
      item.remove();
      status.append(notice("success", `Deleted “${chart.name}”.`));
    } catch (error) {
      status.append(notice("error", describe(error)));
    }
  }
  async function save() {
    clear(status);
    try {
      await download(chart.files.cgats);
    } catch (error) {
      status.append(notice("error", describe(error)));
    }
  }
  const item = h(
    "li",
    { class: "card profile", dataset: { chartId: chart.id } },
    h("h2", { class: "profile-name" }, chart.name),
    h("p", { class: "muted" }, chartFacts(chart)),
    h(
      "div",
      { class: "actions" },
      h("a", { class: "button primary", href: href("/upload", { chart: chart.id }), "aria-label": `Use for new uploads: ${chart.name}` }, "Use for new uploads"),
      h("button", { type: "button", onclick: save, "aria-label": `Download the CGATS file of ${chart.name}` }, "CGATS file"),
      mayChange ? h("button", { type: "button", class: "danger", onclick: remove, "aria-label": `Delete ${chart.name}` }, "Delete") : null,
    ),
  );
  return item;
}

function number(name, { min, max, step, value }) {
  return h("input", { type: "number", name, id: `chart-${name}`, required: true, min, max, step, value, inputmode: step === 1 ? "numeric" : "decimal" });
}

/** The form that adds a chart; calls `added(chart)` with the API's answer. */
function chartForm(added) {
  const status = h("div", { class: "form-status", id: "chart-form-status" });
  const file = h("input", { type: "file", name: "file", id: "chart-file", required: true, accept: CGATS_FILES });
  const form = h(
    "form",
    { class: "card", id: "chart-form", "aria-labelledby": "chart-form-title" },
    h("h2", { id: "chart-form-title" }, "Add a chart"),
    h(
      "div",
      { class: "grid" },
      field("Name", h("input", { type: "text", name: "name", id: "chart-name", required: true, maxlength: 100 })),
      field("Reference values (CGATS.17 file)", file, "SAMPLE_ID with LAB_L LAB_A LAB_B, or XYZ_X XYZ_Y XYZ_Z, one row per patch, row by row from the top left."),
      field("Rows", number("rows", { min: 1, max: 100, step: 1, value: 4 })),
      field("Columns", number("columns", { min: 1, max: 100, step: 1, value: 6 })),
      field("Gap between patches", number("gap", { min: 0, max: 2, step: 0.01, value: 0.1 }), "As a share of a patch's side: 0.1 is a tenth of a patch."),
      field("Margin around the patches", number("margin", { min: 0, max: 10, step: 0.01, value: 0.5 }), "The chart's border, as a share of a patch's side."),
    ),
    status,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Add chart")),
  );
  handleSubmit(form, status, async () => {
    const chart = await call("charts", { method: "POST", body: new FormData(form) });
    form.reset();
    added(chart);
    return `Added “${chart.name}” (${chart.patch_count} patches).`;
  });
  return form;
}

export async function render() {
  const { items } = await call("charts");
  const mayChange = currentMembership()?.role !== "viewer";
  const status = h("div", { class: "form-status", id: "charts-status" });
  const list = h("ul", { class: "profile-list", id: "chart-list", "aria-label": "Charts" }, items.map((chart) => chartItem(chart, status, mayChange)));
  const empty = h("p", { class: "empty", id: "charts-empty", hidden: items.length > 0 }, "No charts yet. Charts of the ColorChecker family are known already; add your own chart here.");
  function added(chart) {
    list.prepend(chartItem(chart, status, mayChange));
    empty.hidden = true;
  }
  return [
    h("h1", {}, "Charts"),
    h(
      "p",
      { class: "lead" },
      "A custom chart is a grid of patches whose true colours you know: its layout finds it in the photo and its reference values correct the colours. ",
      "Choose it when you upload photos of it.",
    ),
    status,
    mayChange ? chartForm(added) : notice("info", "Viewers see the organisation's charts; members add and delete them."),
    empty,
    list,
  ];
}
