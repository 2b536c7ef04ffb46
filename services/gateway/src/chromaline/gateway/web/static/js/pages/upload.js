// Upload: drop or pick photos (or ZIPs of them), choose options, start a batch.

import { call, upload } from "../api.js";
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
  accepted,
} from "../options.js";
import { href, navigate } from "../router.js";

function sizeText(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  return `${Math.max(1, Math.round(bytes / 1024))} kB`;
}

export async function render(context) {
  let profiles = [];
  let profilesError = null;
  try {
    profiles = (await call("profiles")).items;
  } catch (error) {
    profilesError = describe(error);
  }
  const chosen = [];
  const fileList = h("ul", { class: "file-list", "aria-label": "Chosen files" });
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
  const submit = h("button", { type: "submit", class: "primary", disabled: true }, "Upload and correct");

  function drawFiles() {
    clear(fileList);
    chosen.forEach((file, index) => {
      fileList.append(
        h(
          "li",
          {},
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
    submit.disabled = chosen.length === 0;
  }

  function add(files) {
    clear(status);
    const refused = [];
    for (const file of files) {
      if (accepted(file.name)) chosen.push(file);
      else refused.push(file.name);
    }
    if (refused.length) {
      status.append(
        notice(
          "error",
          `Not added: ${refused.join(", ")}. Only JPEG, PNG and TIFF photos, or ZIP archives of them, can be corrected.`,
        ),
      );
    }
    drawFiles();
  }

  picker.addEventListener("change", () => {
    add([...picker.files]);
    picker.value = "";
  });

  const dropZone = h(
    "div",
    { class: "drop-zone", id: "drop-zone" },
    h("p", { class: "drop-title" }, "Drop photos or ZIP archives here"),
    h("p", { class: "muted" }, "JPEG, PNG or TIFF with a colour chart in the picture"),
    h("label", { for: "file-picker", class: "button" }, "Choose files…"),
    picker,
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
  const profileHint = profilesError
    ? `Saved profiles could not be loaded: ${profilesError}`
    : "A saved profile corrects photos without a chart, e.g. a series under the same light.";

  const progress = h("progress", { max: 1, value: 0, class: "upload-progress", hidden: true, "aria-label": "Upload progress" });
  const form = h(
    "form",
    { class: "upload-form" },
    dropZone,
    fileList,
    h(
      "fieldset",
      { class: "options" },
      h("legend", {}, "Options"),
      h(
        "div",
        { class: "grid" },
        field("Chart", select("chart_type", CHART_TYPES, "auto")),
        field("Correction method", select("method", METHODS, "auto")),
        field("Chart edition", select("reference_edition", EDITIONS, "2014"), "Printed on the back of the chart."),
        field("Saved profile", profileSelect, profileHint),
        field("Output format", select("output_format", OUTPUT_FORMATS, "jpeg")),
        field("Bit depth", select("bit_depth", BIT_DEPTHS, "8")),
        field("Colour space", select("output_space", OUTPUT_SPACES, "srgb"), "Embedded as an ICC profile."),
      ),
    ),
    status,
    progress,
    h("div", { class: "actions" }, submit),
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!chosen.length) return;
    clear(status);
    const data = new FormData();
    for (const file of chosen) data.append("files", file, file.name);
    for (const name of ["chart_type", "method", "reference_edition", "output_format", "bit_depth", "output_space", "profile_id"]) {
      const value = form.elements[name].value;
      if (value) data.append(name, value);
    }
    submit.disabled = true;
    progress.hidden = false;
    form.setAttribute("aria-busy", "true");
    try {
      const batch = await upload("jobs", data, (share) => {
        progress.value = share;
      });
      navigate(`/batches/${batch.id}`);
    } catch (error) {
      status.append(notice("error", describe(error)));
      submit.disabled = false;
    } finally {
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
