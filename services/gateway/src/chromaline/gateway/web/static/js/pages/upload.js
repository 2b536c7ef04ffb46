// Upload: drop or pick photos (or ZIPs of them), choose options, start a batch.

import { ApiProblem, call, upload } from "../api.js";
import { clear, field, h, notice, select } from "../dom.js";
import { describe } from "../forms.js";
import {
  ACCEPTED,
  BIT_DEPTHS,
  CHART_TYPES,
  EDITIONS,
  METHODS,
  OUTPUT_FORMATS,
  OUTPUT_SPACES,
  PHOTO_FORMATS,
  accepted,
  customChartLabel,
} from "../options.js";
import { href, navigate } from "../router.js";
import { currentMembership } from "../session.js";

function sizeText(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  return `${Math.max(1, Math.round(bytes / 1024))} kB`;
}

/** Where to follow an upload: a single photo's own result page, or the batch's progress. */
export function resultPath(batch) {
  return batch.total === 1 && batch.jobs?.length === 1 ? `/jobs/${batch.jobs[0].id}` : `/batches/${batch.id}`;
}

/** A list the upload form offers (profiles, charts): its items, or why it could not be loaded. */
export async function choices(path) {
  try {
    return { items: (await call(path)).items, error: null };
  } catch (error) {
    return { items: [], error: describe(error) };
  }
}

export async function render(context) {
  if (currentMembership()?.role === "viewer") {
    return [
      h("h1", {}, "Correct photos"),
      notice(
        "info",
        "A viewer sees the organisation's results but does not send photos. Ask an administrator for the member role, or choose another organisation in ",
        h("a", { href: href("/settings") }, "Settings"),
        ". Results are in the ",
        h("a", { href: href("/history") }, "history"),
        ".",
      ),
    ];
  }
  const [{ items: profiles, error: profilesError }, { items: charts, error: chartsError }] = await Promise.all([
    choices("profiles"),
    choices("charts"),
  ]);
  const chosen = [];
  /** Files not sent, each with the sentence saying why: refused by name here or by the server. */
  const refused = [];
  const previews = new Map();
  context.onLeave(() => previews.forEach((url) => URL.revokeObjectURL(url)));
  const fileList = h("ul", { class: "file-list", "aria-label": "Chosen files", id: "file-list" });
  const status = h("div", { class: "form-status" });
  const picker = h("input", {
    type: "file",
    name: "files",
    multiple: true,
    accept: [
      ...ACCEPTED, "image/jpeg", "image/png", "image/tiff", "image/webp", "image/heic", "image/avif", "application/zip",
    ].join(","),
    class: "file-input",
    id: "file-picker",
  });
  const camera = h("input", { type: "file", accept: "image/jpeg,image/png", capture: "environment", class: "file-input", id: "camera-picker" });
  const submit = h("button", { type: "submit", class: "primary", disabled: true }, "Upload and correct");

  function thumbnail(file) {
    if (!/\.(jpe?g|png)$/i.test(file.name)) {
      return h("span", { class: "thumb thumb-kind", "aria-hidden": "true" }, file.name.split(".").pop().toUpperCase().slice(0, 4));
    }
    if (!previews.has(file)) previews.set(file, URL.createObjectURL(file));
    return h("img", { class: "thumb", src: previews.get(file), alt: "", width: 56, height: 56 });
  }

  function drawFiles() {
    clear(fileList);
    chosen.forEach((file, index) => {
      fileList.append(
        h(
          "li",
          { class: "file-accepted" },
          thumbnail(file),
          h("span", { class: "file-name" }, file.name),
          h("span", { class: "muted" }, sizeText(file.size)),
          h(
            "button",
            {
              type: "button",
              class: "link-button",
              "aria-label": `Remove ${file.name}`,
              onclick: () => {
                chosen.splice(index, 1);
                drawFiles();
              },
            },
            "Remove",
          ),
        ),
      );
    });
    for (const { name, reason } of refused) {
      fileList.append(
        h(
          "li",
          { class: "file-refused", dataset: { refused: name } },
          h("span", { class: "thumb thumb-kind", "aria-hidden": "true" }, "✕"),
          h("span", { class: "file-name" }, name),
          h("span", { class: "badge badge-failed" }, "Not sent"),
          h("span", { class: "refusal" }, reason),
        ),
      );
    }
    submit.disabled = chosen.length === 0;
  }

  function add(files) {
    clear(status);
    for (const file of files) {
      if (accepted(file.name)) chosen.push(file);
      else refused.push({ name: file.name, reason: `Only ${PHOTO_FORMATS} photos, or ZIP archives of them, can be corrected.` });
    }
    drawFiles();
  }

  for (const input of [picker, camera]) {
    input.addEventListener("change", () => {
      add([...input.files]);
      input.value = "";
    });
  }

  const dropTitle = h("p", { class: "drop-title" }, "Add photos with a colour chart in view");
  const dropZone = h(
    "div",
    { class: "drop-zone", id: "drop-zone" },
    dropTitle,
    h("p", { class: "muted drop-hint" }, `${PHOTO_FORMATS} photos, or ZIP archives of them. You can also drop them here.`),
    h(
      "div",
      { class: "actions pick-actions" },
      picker,
      h("label", { for: "file-picker", class: "button primary" }, "Choose photos…"),
      camera,
      h("label", { for: "camera-picker", class: "button" }, "Take photo"),
    ),
  );
  for (const name of ["dragenter", "dragover"]) {
    dropZone.addEventListener(name, (event) => {
      event.preventDefault();
      dropZone.classList.add("dragging");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    dropZone.addEventListener(name, () => dropZone.classList.remove("dragging"));
  }
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    add([...event.dataTransfer.files]);
  });

  const preset = context.query.get("profile") || "";
  const profileSelect = select(
    "profile_id",
    [["", "None (use each photo's chart)"], ...profiles.map((p) => [p.id, p.name])],
    preset,
  );
  /** With a saved profile the photos need no chart: the drop zone says so. */
  function askForPhotos() {
    dropTitle.textContent = profileSelect.value
      ? "Add photos taken under the profile's light: they need no chart"
      : "Add photos with a colour chart in view";
  }
  profileSelect.addEventListener("change", askForPhotos);
  askForPhotos();
  const profileHint = profilesError
    ? `Saved profiles could not be loaded: ${profilesError}`
    : "A saved profile corrects photos without a chart, e.g. a series under the same light.";

  const chartSelect = select(
    "chart_id",
    [["", "None (a ColorChecker, found automatically)"], ...charts.map((c) => [c.id, customChartLabel(c)])],
    context.query.get("chart") || "",
  );
  chartSelect.id = "chart-select";
  const chartHint = chartsError
    ? `Custom charts could not be loaded: ${chartsError}`
    : h("span", {}, "A chart your organisation defined. ", h("a", { href: href("/charts") }, "Manage charts"), ".");

  const progress = h("progress", { max: 1, value: 0, class: "upload-progress", hidden: true, "aria-label": "Upload progress" });
  const form = h(
    "form",
    { class: "upload-form" },
    dropZone,
    fileList,
    status,
    progress,
    h("div", { class: "actions" }, submit),
    profiles.length || profilesError ? field("Saved profile", profileSelect, profileHint) : null,
    charts.length || chartsError ? field("Custom chart", chartSelect, chartHint) : null,
    h(
      "details",
      { class: "options", id: "advanced-options" },
      h("summary", {}, "Advanced"),
      h(
        "div",
        { class: "grid" },
        field("Chart", select("chart_type", CHART_TYPES, "auto")),
        field("Correction method", select("method", METHODS, "auto")),
        field("Chart edition", select("reference_edition", EDITIONS, "2014"), "Printed on the back of the chart."),
        field("Output format", select("output_format", OUTPUT_FORMATS, "jpeg")),
        field("Bit depth", select("bit_depth", BIT_DEPTHS, "8")),
        field("Colour space", select("output_space", OUTPUT_SPACES, "srgb"), "Embedded as an ICC profile."),
      ),
    ),
  );

  /** Send the chosen files; a file the server refuses is set aside with its reason and the rest sent again. */
  async function send(data) {
    const files = [...chosen];
    while (files.length) {
      const body = new FormData();
      for (const file of files) body.append("files", file, file.name);
      for (const [name, value] of data) body.append(name, value);
      try {
        return await upload("jobs", body, (share) => {
          progress.value = share;
        });
      } catch (error) {
        const name = error?.body?.filename;
        const index = files.findIndex((file) => file.name === name);
        if (!(error instanceof ApiProblem) || index < 0) throw error;
        refused.push({ name, reason: describe(error) });
        chosen.splice(chosen.indexOf(files[index]), 1);
        files.splice(index, 1);
        drawFiles();
      }
    }
    return null;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!chosen.length) return;
    clear(status);
    const options = [];
    for (const name of ["chart_type", "method", "reference_edition", "output_format", "bit_depth", "output_space", "profile_id", "chart_id"]) {
      const value = form.elements[name]?.value;
      if (value) options.push([name, value]);
    }
    submit.disabled = true;
    progress.hidden = false;
    form.setAttribute("aria-busy", "true");
    try {
      const before = refused.length;
      const batch = await send(options);
      if (!batch) {
        status.append(notice("error", "None of the files could be sent. See the reasons beside each one, then choose other files."));
      } else if (refused.length > before) {
        chosen.splice(0);
        drawFiles();
        status.append(
          notice(
            "success",
            `Sent ${batch.total} file${batch.total === 1 ? "" : "s"}; the ones marked “Not sent” were refused. `,
            h("a", { href: href(resultPath(batch)), id: "follow-upload" }, "Follow the upload"),
          ),
        );
      } else {
        navigate(resultPath(batch));
      }
    } catch (error) {
      status.append(notice("error", describe(error)));
    } finally {
      submit.disabled = chosen.length === 0;
      progress.hidden = true;
      form.removeAttribute("aria-busy");
    }
  });

  return [
    h("h1", {}, "Correct photos"),
    h(
      "p",
      { class: "lead" },
      "Each photo needs a colour chart in view. Chromaline finds it, measures its patches and corrects the whole image. ",
      h("a", { href: href("/history") }, "Earlier results"),
      " are in the history.",
    ),
    form,
  ];
}
