// One job's result: the comparison, the chart found, ΔE per patch, rating, downloads, profile.

import { call, download, fetchBlob, upload } from "../api.js";
import { clear, formatDate, formatNumber, h, notice } from "../dom.js";
import { describe, handleSubmit } from "../forms.js";
import { follow } from "../live.js";
import { MANUAL_CORNER_REASONS, REASONS, TERMINAL, stateLabel } from "../options.js";
import { href, navigate } from "../router.js";
import { chartOverlay, comparison } from "../components/compare.js";
import { cornerPicker } from "../components/corners.js";
import { deltaChart, patchTable } from "../components/patches.js";

const DOWNLOADS = [
  ["corrected", "Corrected image"],
  ["report.pdf", "Report (PDF)"],
  ["report.html", "Report (HTML)"],
  ["report.json", "Report (JSON)"],
  ["measurements", "Measurements (JSON)"],
  ["profile.json", "Profile (JSON)"],
  ["profile.cube", "Profile (.cube LUT)"],
  ["original", "Original photo"],
];

const SHOWN_IN_BROWSERS = /\.(jpe?g|png)$/i;

function viewable(job, name) {
  if (name === "original") return SHOWN_IN_BROWSERS.test(job.filename);
  return ["jpeg", "png"].includes(job.options?.output_format || "jpeg");
}

/** A job file as a blob: URL for <img>, revoked when the page is left; the blob too. */
async function loadFile(job, name, urls) {
  const { blob } = await fetchBlob(job.files[name]);
  const url = URL.createObjectURL(blob);
  urls.push(url);
  return { url, blob };
}

function stat(label, value, id) {
  return h("div", { class: "stat" }, h("dt", {}, label), h("dd", { id }, value));
}

/** The figures every finished job keeps, expired or not: ΔE₀₀ before and after, rating, chart, method. */
const OBJECTIVES = { least_squares: "least squares", delta_e2000: "minimum mean ΔE₀₀" };

function jobStats(job) {
  return [
    stat("Mean ΔE₀₀ before", formatNumber(job.delta_e2000_before), "de-before"),
    stat("Mean ΔE₀₀ after", formatNumber(job.delta_e2000_after), "de-after"),
    stat("Rating", job.rating || "—", "rating"),
    stat("Chart", job.chart_type || "—", "chart-type"),
    stat("Method", job.method || "—", "method"),
  ];
}

/** The summary card: a job's figures as one list of stats (empty entries left out by h). */
function summaryCard(...stats) {
  return h(
    "section",
    { class: "card", "aria-labelledby": "summary-title" },
    h("h2", { id: "summary-title", class: "visually-hidden" }, "Summary"),
    h("dl", { class: "stats" }, ...stats),
  );
}

function downloads(job, errors) {
  const buttons = DOWNLOADS.filter(([name]) => job.files[name]).map(([name, label]) =>
    h("li", {}, h("button", { type: "button", dataset: { file: name }, onclick: () => save(job.files[name]) }, label)),
  );
  if (job.batch_id) {
    buttons.push(h("li", {}, h("button", { type: "button", dataset: { file: "batch" }, onclick: () => save(`/api/v1/batches/${job.batch_id}/archive`) }, "Whole batch (ZIP)")));
  }
  async function save(path) {
    clear(errors);
    try {
      await download(path);
    } catch (error) {
      errors.append(notice("error", describe(error)));
    }
  }
  return h("section", { class: "card", "aria-labelledby": "downloads-title" }, h("h2", { id: "downloads-title" }, "Downloads"), h("ul", { class: "download-list" }, buttons), errors);
}

function profileForm(job) {
  const status = h("div", { class: "form-status" });
  const name = h("input", { name: "name", type: "text", required: true, maxlength: 120, value: job.filename.replace(/\.[^.]+$/, ""), id: "profile-name" });
  const form = h(
    "form",
    { class: "inline-form", id: "save-profile" },
    h("label", { for: "profile-name" }, "Name"),
    name,
    h("button", { type: "submit" }, "Save as profile"),
  );
  handleSubmit(form, status, async (values) => {
    const profile = await call("profiles", { method: "POST", json: { job_id: job.id, name: values.name } });
    return notice(
      "success",
      `Saved “${profile.name}”. `,
      h("a", { href: href("/upload", { profile: profile.id }) }, "Use it for new uploads"),
      " or ",
      h("a", { href: href("/profiles") }, "manage profiles"),
      ".",
    );
  });
  return h(
    "section",
    { class: "card", "aria-labelledby": "profile-title" },
    h("h2", { id: "profile-title" }, "Reuse this correction"),
    h("p", { class: "muted" }, "A profile applies this correction to other photos taken under the same light, even without a chart in them."),
    form,
    status,
  );
}

async function doneView(job, urls) {
  const measurements = await call(job.files.measurements);
  const size = measurements.image_size;
  const [before, after] = await Promise.all([
    viewable(job, "original") ? loadFile(job, "original", urls).then((file) => file.url) : null,
    viewable(job, "corrected") ? loadFile(job, "corrected", urls).then((file) => file.url) : null,
  ]);
  const picture = before && after
    ? comparison({ beforeUrl: before, afterUrl: after, size, overlay: chartOverlay(measurements) })
    : notice("info", "Only JPEG and PNG photos are shown side by side here (not TIFF, WebP, HEIC, AVIF or RAW). Download the images below, or the report, which has previews.");
  const summary = measurements.after?.cie2000;
  const summaryBefore = measurements.before?.cie2000;
  return [
    summaryCard(
      ...jobStats(job),
      summary ? stat("ΔE₀₀ after: p95 · max", `${formatNumber(summary.p95)} · ${formatNumber(summary.max)}`) : null,
      summaryBefore ? stat("ΔE₀₀ before: p95 · max", `${formatNumber(summaryBefore.p95)} · ${formatNumber(summaryBefore.max)}`) : null,
      measurements.cross_validated_delta_e2000 !== null
        ? stat("Cross-validated ΔE₀₀", formatNumber(measurements.cross_validated_delta_e2000))
        : null,
      measurements.objective ? stat("Fitted by", OBJECTIVES[measurements.objective] || measurements.objective, "objective") : null,
    ),
    h("section", { class: "card", "aria-labelledby": "compare-title" }, h("h2", { id: "compare-title" }, "Before and after"), picture),
    h("section", { class: "card", "aria-labelledby": "chart-title" }, h("h2", { id: "chart-title" }, "ΔE₀₀ per patch"), deltaChart(measurements), patchTable(measurements)),
    downloads(job, h("div", {})),
    profileForm(job),
  ];
}

/** Upload the original again with the same options and the corners marked by hand. */
async function resubmit(job, corners, original, status) {
  clear(status);
  try {
    const blob = original || (await fetchBlob(job.files.original)).blob;
    const form = new FormData();
    form.append("files", new File([blob], job.filename, { type: blob.type }));
    for (const name of ["chart_type", "method", "reference_edition", "output_format", "bit_depth", "output_space"]) {
      if (job.options?.[name] !== undefined) form.append(name, String(job.options[name]));
    }
    form.append("corners", JSON.stringify(corners));
    const batch = await upload("jobs", form);
    navigate(`/batches/${batch.id}`);
  } catch (error) {
    status.append(notice("error", describe(error)));
  }
}

async function failedView(job, urls) {
  const reason = REASONS[job.reason] || "The photo could not be processed.";
  const plain = (text) => (text || "").toLowerCase().replace(/[.\s]+$/, "");
  const detail = job.message && plain(job.message) !== plain(reason) ? ` ${job.message}` : "";
  const parts = [notice("error", h("strong", {}, reason), detail)];
  if (MANUAL_CORNER_REASONS.has(job.reason)) {
    const original = viewable(job, "original") ? await loadFile(job, "original", urls) : null;
    const imageUrl = original ? original.url : null;
    const status = h("div", { class: "form-status" });
    parts.push(
      h(
        "section",
        { class: "card", "aria-labelledby": "corners-title" },
        h("h2", { id: "corners-title" }, "Show where the chart is"),
        h(
          "p",
          {},
          "If the chart is in the photo, mark its four outer corners: start at the corner next to the dark-skin (brown) patch and go clockwise. The photo is then corrected from the chart you marked.",
        ),
        imageUrl ? null : notice("info", "This photo is not shown here (only JPEG and PNG are): type the corners in pixels instead."),
        cornerPicker({ imageUrl, onSubmit: (corners) => resubmit(job, corners, original?.blob, status) }),
        status,
      ),
    );
  }
  parts.push(downloads(job, h("div", {})));
  return parts;
}

/** What stays of a job after its organisation's retention period: the summary, no files. */
function expiredView(job) {
  return [
    notice(
      "info",
      h("strong", {}, "The files of this job were deleted"),
      ` on ${formatDate(job.expired_at)}, once the organisation's retention period was over. The summary below is kept.`,
    ),
    summaryCard(...jobStats(job), stat("Finished", formatDate(job.finished_at), "finished-at")),
  ];
}

const VIEWS = { done: doneView, failed: failedView, expired: expiredView };

export async function render(context) {
  const urls = [];
  context.onLeave(() => urls.forEach((url) => URL.revokeObjectURL(url)));
  const job = await call(`jobs/${context.params.id}`);
  const heading = h("h1", {}, job.filename);
  const state = h("span", { class: `badge badge-${job.state}`, id: "job-state" }, stateLabel(job.state));
  const meta = h(
    "p",
    { class: "muted" },
    state,
    ` Uploaded ${formatDate(job.created_at)}`,
    job.batch_id ? [" · ", h("a", { href: href(`/batches/${job.batch_id}`) }, "batch")] : null,
  );
  const body = h("div", { class: "result-body", id: "result-body" });

  async function fill(current) {
    clear(body).append(h("p", { class: "loading" }, "Loading the results…"));
    try {
      const nodes = await VIEWS[current.state](current, urls);
      clear(body).append(...nodes);
    } catch (error) {
      clear(body).append(notice("error", describe(error)));
    }
  }

  if (TERMINAL.has(job.state)) {
    await fill(job);
  } else {
    const progress = h("progress", { max: 1, value: job.progress, "aria-label": "Progress" });
    body.append(h("div", { class: "card", "aria-live": "polite" }, h("p", {}, "Working on it…"), progress));
    context.onLeave(
      follow(`jobs/${job.id}`, (view) => {
        progress.value = view.progress;
        state.className = `badge badge-${view.state}`;
        state.textContent = stateLabel(view.state);
        if (TERMINAL.has(view.state)) fill(view);
      }, (view) => TERMINAL.has(view.state)),
    );
  }
  return [heading, meta, body];
}
