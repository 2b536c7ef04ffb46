// One job's result: the comparison, the chart found, ΔE per patch, rating, downloads, profile.

import { call, download, fetchBlob, upload } from "../api.js";
import { clear, field, fill, formatDate, formatNumber, h, notice, select } from "../dom.js";
import { asSentence, describe, handleSubmit } from "../forms.js";
import { follow } from "../live.js";
import {
  MANUAL_CORNER_REASONS,
  OBJECTIVES,
  REASONS,
  TERMINAL,
  chartName,
  customChartLabel,
  deltaEMeaning,
  methodName,
  ratingOf,
  stateLabel,
} from "../options.js";
import { href, navigate } from "../router.js";
import { currentMembership } from "../session.js";
import { chartOverlay, comparison, correctedOnly } from "../components/compare.js";
import { cornerPicker } from "../components/corners.js";
import { deltaChart, patchTable } from "../components/patches.js";
import { choices, resultPath } from "./upload.js";

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

/** The summary card: a job's figures as one list of stats (empty entries left out by h). */
function summaryCard(...stats) {
  return h(
    "section",
    { class: "card", "aria-labelledby": "summary-title" },
    h("h2", { id: "summary-title", class: "visually-hidden" }, "Summary"),
    h("dl", { class: "stats" }, ...stats),
  );
}

const FLAG_WARNINGS = {
  clipped: (n) => `${n} of the chart's patches ${n === 1 ? "is" : "are"} too bright to measure (clipped) and ${n === 1 ? "was" : "were"} left out. Expose a little less next time.`,
  dark: (n) => `${n} of the chart's patches ${n === 1 ? "is" : "are"} too dark to measure well. Expose a little more next time.`,
  non_uniform: (n) => `${n} of the chart's patches ${n === 1 ? "is" : "are"} unevenly lit (glare or a shadow across ${n === 1 ? "it" : "them"}). Light the chart evenly and avoid reflections.`,
  outside_frame: (n) => `${n} of the chart's patches ${n === 1 ? "falls" : "fall"} outside the photo. Keep the whole chart in the picture.`,
};

/** A patch this much worse after correction (ΔE₀₀) is named: the corrector's own limit for its warning. */
const WORSE_AFTER = 2;

/** Cross-validation this much worse than the fit (and at least 1 ΔE₀₀ worse) means over-fitting. */
const OVERFIT_RATIO = 2;

/** What a person should know about how far to trust the figures, in plain words. */
function warnings(job, measurements) {
  const counts = {};
  for (const patch of measurements.patches) {
    for (const flag of patch.flags) counts[flag] = (counts[flag] || 0) + 1;
  }
  const found = Object.entries(counts).map(([flag, n]) => (FLAG_WARNINGS[flag] ? FLAG_WARNINGS[flag](n) : `${n} patches were flagged “${flag}”.`));
  const before = job.delta_e2000_before;
  const after = job.delta_e2000_after;
  if (before !== null && after !== null && after > before) {
    found.push("The correction made the chart's colours worse. Try another method under Advanced, or check the chart's edition.");
  }
  const crossValidated = measurements.cross_validated_delta_e2000;
  const overfit = crossValidated !== null && after !== null && crossValidated > OVERFIT_RATIO * after && crossValidated - after > 1;
  if (overfit) {
    found.push(`Colours that are not on the chart may be off by more (about ${formatNumber(crossValidated, 1)} ΔE₀₀): the correction follows this chart more closely than it is likely to follow the rest of the photo. A simpler method is safer.`);
  }
  const doubts = new Set((job.warnings || []).map((warning) => warning.code));
  if (doubts.has("patch_worse_after")) {
    const worse = measurements.patches.filter(({ delta_e2000: [was, now] }) => now - was > WORSE_AFTER).map((patch) => patch.name);
    const named = worse.map((name) => `“${name}”`).join(", ");
    found.push(`The correction made ${worse.length === 1 ? "a patch" : "some patches"} clearly worse${named ? `: ${named}` : ""}. Check ${worse.length === 1 ? "that colour" : "those colours"} in the corrected photo.`);
  }
  if (doubts.has("cross_validated_above_limit") && !overfit && crossValidated !== null) {
    found.push(`Colours that are not on the chart may be off by about ${formatNumber(crossValidated, 1)} ΔE₀₀, more than the guideline's lowest level allows.`);
  }
  if (doubts.has("small_patches")) {
    found.push("The chart's patches are only a few pixels across in this photo, so each colour is measured on few pixels. Move closer, or let the chart fill more of the frame.");
  }
  for (const warning of job.warnings || []) {
    if (warning.code === "profile_mismatch") found.push(`${warning.message.charAt(0).toUpperCase()}${warning.message.slice(1)}.`);
  }
  return found;
}

/** The rating as a coloured badge with the guideline's words beside it. */
function ratingBadge(rating, id) {
  if (!rating) return h("p", { class: "verdict-rating" }, h("span", { class: "rating-badge rating-none", id }, "Not rated"));
  return h(
    "p",
    { class: "verdict-rating" },
    h("span", { class: `rating-badge rating-${rating.tone}`, id, dataset: { stars: rating.stars } }, `${rating.guideline} ${rating.label}`),
    " ",
    h("span", { class: "rating-words", id: `${id}-words` }, rating.words),
  );
}

/** ΔE₀₀ before → after in large figures, under a label. */
function bigFigures(label, before, after) {
  return h(
    "p",
    { class: "verdict-figures" },
    h("span", { class: "verdict-label" }, label),
    h(
      "span",
      { class: "verdict-numbers" },
      h("span", { id: "de-before", class: "de-before-figure" }, formatNumber(before)),
      h("span", { class: "verdict-arrow", "aria-hidden": "true" }, " → "),
      h("span", { class: "visually-hidden" }, " became "),
      h("span", { id: "de-after", class: "de-after-figure" }, formatNumber(after)),
    ),
  );
}

/** The first thing on the page: is the correction good? Big ΔE₀₀ before → after, rating, meaning, warnings. */
function verdict(job, measurements, profile) {
  const before = job.delta_e2000_before;
  const after = job.delta_e2000_after;
  const rating = ratingOf(job.rating);
  const parts = [];
  if (after !== null) {
    parts.push(
      bigFigures("Mean colour error (ΔE₀₀)", before, after),
      ratingBadge(rating, "rating"),
      h(
        "p",
        { class: "verdict-sentence", id: "verdict-sentence" },
        `After correction the chart's colours are on average ${formatNumber(after, 1)} ΔE₀₀ from their true values: ${deltaEMeaning(after)}.`,
        before !== null ? ` Before, they were ${formatNumber(before, 1)} off.` : "",
      ),
    );
  } else if (profile) {
    parts.push(...profileVerdict(profile));
  } else {
    parts.push(h("p", { class: "verdict-sentence", id: "verdict-sentence" }, "No chart was measured in this photo, so there are no colour errors to report."));
  }
  if (profile) {
    parts.push(
      h(
        "p",
        { id: "profile-used" },
        "Corrected with the saved profile ",
        profile.saved ? h("a", { href: href("/profiles"), id: "profile-link" }, `“${profile.saved.name}”`) : "(since deleted)",
        profile.source ? [", made from ", h("a", { href: href(`/jobs/${profile.source.id}`) }, profile.source.filename)] : null,
        ".",
      ),
    );
  }
  const found = measurements ? warnings(job, measurements) : [];
  if (found.length) {
    parts.push(
      h(
        "div",
        { class: "verdict-warnings", id: "verdict-warnings" },
        h("h3", {}, "Worth knowing"),
        h("ul", {}, found.map((text) => h("li", {}, text))),
      ),
    );
  }
  return h(
    "section",
    { class: `card verdict verdict-${rating ? rating.tone : "none"}`, id: "verdict", "aria-labelledby": "verdict-title" },
    h("h2", { id: "verdict-title", class: "visually-hidden" }, "Verdict"),
    ...parts,
  );
}

/** A profile job whose photo has no chart: the profile's own figures, from the photo it was made from. */
function profileVerdict(profile) {
  const source = profile.source;
  if (!source || source.delta_e2000_after === null) {
    return [h("p", { class: "verdict-sentence", id: "verdict-sentence" }, "This photo has no chart, so its colours could not be measured. It was corrected with a saved profile.")];
  }
  const rating = ratingOf(source.rating);
  return [
    bigFigures("The profile's mean colour error (ΔE₀₀), on the chart it was made from", source.delta_e2000_before, source.delta_e2000_after),
    ratingBadge(rating, "rating"),
    h(
      "p",
      { class: "verdict-sentence", id: "verdict-sentence" },
      `This photo has no chart of its own, so these are the profile's figures: on the photo it was made from, it brought the chart to ${formatNumber(source.delta_e2000_after, 1)} ΔE₀₀, ${deltaEMeaning(source.delta_e2000_after)}. They hold for this photo if it was taken under the same light.`,
    ),
  ];
}

function detail(term, value, explanation, id) {
  return [h("dt", {}, term), h("dd", {}, h("strong", { id }, value), explanation ? h("span", { class: "explain" }, ` ${explanation}`) : null)];
}

/** The chart a job was measured with: a custom chart by the name its organisation gave it. */
function jobChartName(job, chartType) {
  const custom = job.options?.custom_chart;
  return chartType === "custom" && custom?.name ? `${chartName(chartType)} “${custom.name}” (${custom.rows} × ${custom.columns})` : chartName(chartType);
}

/** The charts found in the photo besides the one it was corrected with, with the correction's
 * held-out check on each when the measurements carry it, and a button to correct with one of them
 * instead (its corners sent again); null when there were none. */
function otherCharts(job, measurements) {
  const others = measurements.other_charts?.length ? measurements.other_charts : job.other_charts || [];
  if (!others.length) return null;
  const progress = h("span", {});
  const problems = h("div", {});
  const status = h("div", { role: "status" }, progress, problems);
  const described = (chart) => {
    const found = `${chartName(chart.chart_type)}, confidence ${formatNumber(chart.confidence, 2)}`;
    const after = chart.delta_e2000_after?.mean;
    if (after === undefined || after === null) return found;
    return `${found}: ${formatNumber(chart.delta_e2000_before?.mean, 1)} → ${formatNumber(after, 1)} ΔE₀₀ on its ${chart.patches_compared} patches`;
  };
  const buttons = [];
  // Sending uploads the photo again, which takes a while: one click sends once, and while it is
  // under way no other chart's button sends it a second time.
  const correctWith = async (chart, button) => {
    if (buttons.some((each) => each.disabled)) return;
    buttons.forEach((each) => {
      each.disabled = true;
    });
    progress.textContent = `Sending the photo again, to be corrected with the ${chartName(chart.chart_type)}…`;
    try {
      await resubmit(job, problems, { corners: chart.corners, chartType: chart.chart_type });
    } finally {
      progress.textContent = "";
      buttons.forEach((each) => {
        each.disabled = false;
      });
      if (button.isConnected && document.activeElement === document.body) button.focus();
    }
  };
  const items = others.map((chart) => {
    // Every button reads "Correct with this chart"; its name also says which chart, so a list of
    // them (as a screen reader gives) tells them apart.
    const button = mayChange()
      ? h("button", { type: "button", "aria-label": `Correct with this chart, the ${chartName(chart.chart_type)}` }, "Correct with this chart")
      : null;
    if (button) {
      button.addEventListener("click", () => correctWith(chart, button));
      buttons.push(button);
    }
    return h("li", {}, h("span", { class: "other-chart" }, described(chart)), button ? [" ", button] : null);
  });
  return [
    h("dt", {}, "Also in the photo"),
    h(
      "dd",
      {},
      h("ul", { id: "other-charts", class: "plain-list" }, items),
      h("span", { class: "explain" }, "Found, not fitted: the photo was corrected with the most confident chart, named above. None of another chart's patches was fitted, so its ΔE₀₀ after correction is an independent check of the colours off the chart."),
      status,
    ),
  ];
}

/** How the figures were made, one click away: chart, method, cross-validation, percentiles. */
function details(job, measurements) {
  const after = measurements.after?.cie2000;
  const before = measurements.before?.cie2000;
  return h(
    "details",
    { class: "card result-details", id: "result-details" },
    h("summary", {}, "How this was measured"),
    h(
      "dl",
      { class: "details-list" },
      detail("Chart", jobChartName(job, measurements.chart_type), measurements.reference_edition ? `(${measurements.reference_edition} edition). Its patches' true colours are published by the maker; the photo's are measured against them.` : null, "chart-type"),
      otherCharts(job, measurements),
      detail("Correction method", methodName(measurements.method), "The kind of mapping from the camera's colours to the chart's true ones. Simpler methods follow the chart less closely but behave better on other colours.", "method"),
      measurements.objective ? detail("Fitted to", OBJECTIVES[measurements.objective] || measurements.objective, "What the fit made as small as it could.", "objective") : null,
      measurements.cross_validated_delta_e2000 !== null
        ? detail("Expected error on other colours", `${formatNumber(measurements.cross_validated_delta_e2000)} ΔE₀₀`, "Cross-validation: each patch predicted by a correction fitted without it. It is a fairer guess for the colours of the photo that are not on the chart.", "cross-validated")
        : null,
      after ? detail("After: 95% of patches within", `${formatNumber(after.p95)} ΔE₀₀`, `The worst patch is ${formatNumber(after.max)}; the middle one ${formatNumber(after.median)}.`, "p95-after") : null,
      before ? detail("Before: 95% of patches within", `${formatNumber(before.p95)} ΔE₀₀`, `The worst patch was ${formatNumber(before.max)}.`, "p95-before") : null,
      detail("ΔE₀₀ (CIEDE2000)", "how far apart two colours look", "About 1 is the smallest difference a trained eye sees side by side; 2 to 4 is visible on close comparison; above 8 anyone sees it.", "what-is-delta-e"),
    ),
  );
}

/** The report's figures, drawn by the reporter with matplotlib and served as SVG: name, title, description. */
const FIGURES = [
  ["chromaticity.svg", "Colours in the a*b* plane", "Each arrow runs from where a patch's colour was measured to where it should be: short arrows after correction mean accurate colour."],
  ["tone-response.svg", "Tone response", "The grey patches' measured lightness against their true lightness: on the dashed diagonal, tones are exact."],
  ["patch-pairs.svg", "Reference and corrected colours", "Each patch's true colour (left) beside its corrected colour (right)."],
];

/** The figures this job has, as images fetched with the session's headers; null when it has none. */
/** The reporter's widest figures are an A4 page wide (11.69 in, in CSS pixels): shown at most 60rem wide. */
const PAGE_WIDE_FIGURE_PX = 11.69 * 96;
const PAGE_WIDE_FIGURE_REM = 60;

/** A figure as an image, no wider than its share of a page-wide figure's room: every figure's
 * lettering is then shown at one size (the square tone response was blown up to a page's width). */
function figureImage(url, alt) {
  const image = h("img", { src: url, alt, loading: "lazy" });
  image.addEventListener("load", () => {
    image.style.maxWidth = `${(PAGE_WIDE_FIGURE_REM * image.naturalWidth) / PAGE_WIDE_FIGURE_PX}rem`;
  });
  return image;
}

/** The figures this job has, as a section shown at once and filled in as they arrive: they are
 * drawn when the report is first viewed, which takes a moment. Null when the job has none. */
function figures(job, urls) {
  const present = FIGURES.filter(([name]) => job.files[name]);
  if (!present.length) return null;
  const status = h("p", { class: "muted", id: "figures-status", role: "status" }, "Drawing the figures…");
  const section = h("section", { class: "card", "aria-labelledby": "figures-title", "aria-busy": "true", id: "report-figures" }, h("h2", { id: "figures-title" }, "Colours on the chart"), status);
  Promise.all(present.map(([name]) => loadFile(job, name, urls).catch(() => null))).then((loaded) => {
    const items = present
      .map(([name, title, text], index) =>
        loaded[index]
          ? h(
              "figure",
              { class: "report-figure", dataset: { figure: name } },
              figureImage(loaded[index].url, `${title}. ${text} The values are in the table below.`),
              h("figcaption", {}, h("strong", {}, title), ` ${text}`),
            )
          : null,
      )
      .filter(Boolean);
    section.removeAttribute("aria-busy");
    if (items.length) status.replaceWith(...items);
    else status.textContent = "The figures could not be drawn just now. Reload the page to try again; the values are in the table below.";
  });
  return section;
}

/** The saved profile a job used and the job it was made from; null for jobs without one. */
async function profileOf(job) {
  const key = job.options?.profile?.key;
  if (!key) return null;
  const sourceId = job.profile_source_job_id;
  const [profiles, source] = await Promise.all([
    call("profiles").then((answer) => answer.items).catch(() => []),
    sourceId ? call(`jobs/${sourceId}`).catch(() => null) : null,
  ]);
  return { saved: profiles.find((profile) => profile.source_job_id === sourceId) || null, source };
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
    // The PDF report and the batch archive may be made on request: say so while the server works.
    const preparing = setTimeout(() => errors.append(notice("info", "Preparing the download…")), 1000);
    try {
      await download(path);
      clear(errors);
    } catch (error) {
      clear(errors);
      const later = error?.code === "report_pdf_rendering" || error?.code === "report_html_rendering";
      errors.append(notice(later ? "info" : "error", describe(error)));
    } finally {
      clearTimeout(preparing);
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
  /** The profile saved from this page: a second click on "Save" names it instead of saving it again. */
  let saved = null;
  handleSubmit(form, status, async (values) => {
    if (saved && saved.name === values.name) {
      return notice("info", `Already saved as “${saved.name}”. Change the name to save another profile. `, h("a", { href: href("/profiles") }, "Manage profiles"));
    }
    const profile = await call("profiles", { method: "POST", json: { job_id: job.id, name: values.name } });
    saved = profile;
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
  const pictures = figures(job, urls);
  const [measurements, profile] = await Promise.all([call(job.files.measurements), profileOf(job)]);
  const size = measurements.image_size;
  const [before, after] = await Promise.all([
    viewable(job, "original") ? loadFile(job, "original", urls).then((file) => file.url) : null,
    viewable(job, "corrected") ? loadFile(job, "corrected", urls).then((file) => file.url) : null,
  ]);
  const corners = measurements.corners;
  const focus = corners ? [corners.reduce((sum, [x]) => sum + x, 0) / 4, corners.reduce((sum, [, y]) => sum + y, 0) / 4] : null;
  const excluded = measurements.patches.some((patch) => !patch.used_in_fit);
  const measured = measurements.patches.length > 0;
  const overlay = measured ? chartOverlay(measurements) : null;
  const picture = before && after
    ? comparison({ beforeUrl: before, afterUrl: after, size, overlay, focus, excluded })
    : after
      ? correctedOnly({ afterUrl: after, size, overlay, format: job.filename.split(".").pop().toUpperCase(), excluded })
      : notice("info", "Only JPEG and PNG photos are shown side by side here (not TIFF, WebP, HEIC, AVIF or RAW). Download the images below, or the report, which has previews.");
  return [
    verdict(job, measurements, profile),
    reportStatus(job),
    measured ? details(job, measurements) : null,
    h("section", { class: "card", "aria-labelledby": "compare-title" }, h("h2", { id: "compare-title" }, before || !after ? "Before and after" : "The corrected photo"), picture),
    pictures,
    measured
      ? h("section", { class: "card", "aria-labelledby": "chart-title" }, h("h2", { id: "chart-title" }, "Colour error per patch"), deltaChart(measurements), patchTable(measurements))
      : null,
    downloads(job, h("div", {})),
    profile || !mayChange() ? null : profileForm(job),
  ];
}

/** The job's photo sent again with its options: at `corners` marked by hand, as another chart
 * found in it (`chartType`), or measured with one of the organisation's custom charts (`chartId`).
 * `original` is the photo's Blob when the page already has it. */
async function resubmit(job, status, { corners = null, chartType = null, chartId = null, original = null } = {}) {
  clear(status);
  try {
    const blob = original || (await fetchBlob(job.files.original)).blob;
    const form = new FormData();
    form.append("files", new File([blob], job.filename, { type: blob.type }));
    const chosenType = chartId ? "custom" : chartType;
    const options = chosenType ? { ...job.options, chart_type: chosenType } : job.options;
    // The guideline too: left out, the organisation's setting of today would rate the new job,
    // and it could not be compared with the one it was sent again from.
    for (const name of ["chart_type", "method", "reference_edition", "guideline", "output_format", "bit_depth", "output_space"]) {
      if (options?.[name] !== undefined) form.append(name, String(options[name]));
    }
    const customChart = chartId || job.options?.custom_chart?.chart_id;
    if (customChart) form.append("chart_id", customChart);
    if (corners) form.append("corners", JSON.stringify(corners));
    form.append("sent_again_from", job.id);
    const batch = await upload("jobs", form);
    navigate(resultPath(batch));
  } catch (error) {
    status.append(notice("error", describe(error)));
  }
}

async function failedView(job, urls) {
  const reason = REASONS[job.reason] || "The photo could not be processed.";
  const plain = (text) => (text || "").toLowerCase().replace(/[.\s]+$/, "");
  const detail = job.message && plain(job.message) !== plain(reason) ? ` ${asSentence(job.message)}` : "";
  const parts = [notice("error", h("strong", {}, reason), detail)];
  // Loaded once: shown, and sent again from here without a second download.
  const original = viewable(job, "original") ? await loadFile(job, "original", urls) : null;
  const markable = MANUAL_CORNER_REASONS.has(job.reason) && mayChange();
  if (!markable && original) parts.push(failedPhoto(job, original.url));
  if (markable) {
    const imageUrl = original ? original.url : null;
    const status = h("div", { class: "form-status" });
    const offered = job.candidate?.corners || null;
    parts.push(
      h(
        "section",
        { class: "card", "aria-labelledby": "corners-title" },
        h("h2", { id: "corners-title" }, offered ? "Is this your chart?" : "Show where the chart is"),
        h(
          "p",
          {},
          offered
            ? "The four numbered corners show where Chromaline thinks the chart's patches are. If they sit on the chart's outer corners, correct with them; otherwise move them: start again and mark the corners yourself, from the corner next to the dark-skin (brown) patch, clockwise."
            : "If the chart is in the photo, mark its four outer corners: start at the corner next to the dark-skin (brown) patch and go clockwise. The photo is then corrected from the chart you marked.",
        ),
        imageUrl ? null : notice("info", "This photo is not shown here (only JPEG and PNG are): type the corners in pixels instead."),
        cornerPicker({ imageUrl, offered, onSubmit: (corners) => resubmit(job, status, { corners, original: original?.blob }) }),
        status,
      ),
    );
  }
  if (job.reason === "unknown_chart" && mayChange()) parts.push(await customChartChoice(job, original?.blob));
  parts.push(downloads(job, h("div", {})));
  return parts;
}

/** The photo of a job that failed for a reason corners cannot put right (clipped, too dark,
 * another maker's card), so that what went wrong can be seen. */
function failedPhoto(job, url) {
  return h(
    "section",
    { class: "card", "aria-labelledby": "failed-photo-title" },
    h("h2", { id: "failed-photo-title" }, "The photo"),
    h("div", { class: "failed-photo" }, h("img", { src: url, alt: `The photo sent, ${job.filename}` })),
  );
}

/** For a card whose colours are another maker's: correct the photo (`original`, its Blob when
 * the page has it) with one of the organisation's custom charts, or add the card as one (its
 * maker's reference values) and come back. */
async function customChartChoice(job, original) {
  const status = h("div", { class: "form-status", id: "custom-chart-status" });
  const { items: charts, error } = await choices("charts");
  if (error) status.append(notice("error", `Your custom charts could not be loaded: ${error}`));
  const adding = h(
    "p",
    {},
    charts.length ? "Not in the list? " : "",
    "Add the card as a custom chart, with the reference values its maker publishes (a CGATS.17 file) and its rows and columns, then come back to this page: ",
    h("a", { href: href("/charts") }, "Add a custom chart"),
    ".",
  );
  let form = null;
  if (charts.length) {
    const chooser = select("chart_id", charts.map((chart) => [chart.id, customChartLabel(chart)]));
    form = h(
      "form",
      { id: "custom-chart-form" },
      field("Custom chart", chooser),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Correct with this chart")),
    );
    handleSubmit(form, status, () => resubmit(job, status, { chartId: chooser.value, original }));
  }
  return h(
    "section",
    { class: "card", "aria-labelledby": "custom-chart-title" },
    h("h2", { id: "custom-chart-title" }, "Is it a card of your own?"),
    h("p", {}, "Chromaline found a card of patches, but its colours are not a ColorChecker's, so correcting towards a ColorChecker would shift the photo's colours. If the card is one of your organisation's custom charts, correct the photo with it."),
    form,
    adding,
    status,
  );
}

/** What stays of a job after its organisation's retention period: the summary, no files. */
function expiredView(job) {
  return [
    notice(
      "info",
      h("strong", {}, "The files of this job were deleted"),
      ` on ${formatDate(job.expired_at)}, once the organisation's retention period was over. The summary below is kept.`,
    ),
    verdict(job, null, null),
    summaryCard(
      stat("Chart", jobChartName(job, job.chart_type), "chart-type"),
      stat("Method", methodName(job.method), "method"),
      stat("Finished", formatDate(job.finished_at), "finished-at"),
    ),
  ];
}

const VIEWS = { done: doneView, failed: failedView, expired: expiredView };

/** How to find a control again once the results are drawn anew: its id, or the file it downloads. */
function focusKey(element) {
  if (element.id) return `#${CSS.escape(element.id)}`;
  if (element.tagName === "SUMMARY" && element.parentElement?.id) return `#${CSS.escape(element.parentElement.id)} > summary`;
  if (element.dataset?.file) return `[data-file="${CSS.escape(element.dataset.file)}"]`;
  return null;
}

/** Focus the control `key` names in `container`; the container itself when it is gone. */
function restoreFocus(container, key) {
  const target = key ? container.querySelector(key) : null;
  if (target) {
    target.focus({ preventScroll: true });
    return;
  }
  container.setAttribute("tabindex", "-1");
  container.focus({ preventScroll: true });
}

/** Members and above change an organisation's jobs (delete, save a profile, send corners); a viewer
 * only looks, and is shown none of these controls. */
function mayChange() {
  return currentMembership()?.role !== "viewer";
}

/** "Delete job" for members and above (a viewer may not delete, and does not see it): asks first,
 * then deletes the job and all its files in every service and goes back to the history. */
function deleteJobButton(job, status) {
  if (!mayChange()) return null;
  async function remove() {
    if (!window.confirm(`Delete “${job.filename}” and all its files, results and reports? This cannot be undone.`)) return;
    clear(status);
    try {
      await call(`jobs/${job.id}`, { method: "DELETE" });
      navigate("/history");
    } catch (error) {
      status.append(notice("error", describe(error)));
    }
  }
  return h("button", { type: "button", class: "danger", id: "delete-job", onclick: remove }, "Delete job");
}

/** The before/after line stays where the user left it when the results are drawn again. */
function keepComparison(body, value) {
  const slider = body.querySelector("#compare-slider");
  if (value === undefined || !slider) return;
  slider.value = value;
  slider.dispatchEvent(new Event("input"));
}

/** Nothing more will change: the job has ended, and its report, if one is coming, is made or has failed. */
function settled(view) {
  return TERMINAL.has(view.state) && view.report?.state !== "pending";
}

/** Where a done job's report stands: made after the corrected image, so it may still be on its way. */
function reportStatus(job) {
  const report = job.report;
  if (report?.state === "pending") {
    return h("p", { class: "card report-status", id: "report-status", role: "status", "aria-live": "polite" }, "The corrected image is ready. The report (PDF, HTML and the figures) is being made and appears here when it is done.");
  }
  if (report?.state === "failed") {
    return h("div", { id: "report-status" }, notice("error", h("strong", {}, "The report could not be made."), ` ${report.message || report.reason || ""} The corrected image and its profile are unaffected.`));
  }
  return null;
}

export async function render(context) {
  const urls = [];
  context.onLeave(() => urls.forEach((url) => URL.revokeObjectURL(url)));
  const job = await call(`jobs/${encodeURIComponent(context.params.id)}`);
  const heading = h("h1", {}, job.filename);
  const state = h("span", { class: `badge badge-${job.state}`, id: "job-state" }, stateLabel(job.state));
  const meta = h(
    "p",
    { class: "muted" },
    state,
    ` Uploaded ${formatDate(job.created_at)}`,
    job.batch_id ? [" · ", h("a", { href: href(`/batches/${job.batch_id}`) }, "batch")] : null,
    job.sent_again_from ? [" · sent again from ", h("a", { href: href(`/jobs/${job.sent_again_from}`), id: "sent-again-from" }, "the earlier result")] : null,
  );
  const body = h("div", { class: "result-body", id: "result-body" });
  const deleteStatus = h("div", { id: "delete-status" });
  const actions = h("p", { class: "job-actions" }, deleteJobButton(job, deleteStatus));

  /** Draw the results of `current`. `inPlace`: the old results stay until the new ones are ready,
   * and whoever had focus in them keeps it on the same control (a report arriving must not send a
   * keyboard user back to the top of the page). */
  async function show(current, { inPlace = false } = {}) {
    if (!inPlace) clear(body).append(h("p", { class: "loading" }, "Loading the results…"));
    let nodes;
    try {
      nodes = await VIEWS[current.state](current, urls);
    } catch (error) {
      nodes = [notice("error", describe(error))];
    }
    const focused = body.contains(document.activeElement) ? focusKey(document.activeElement) : undefined;
    const opened = [...body.querySelectorAll("details[open][id]")].map((details) => details.id);
    const compared = body.querySelector("#compare-slider")?.value;
    fill(body, nodes);
    for (const id of opened) body.querySelector(`#${CSS.escape(id)}`)?.setAttribute("open", "");
    keepComparison(body, compared);
    if (focused !== undefined) restoreFocus(body, focused);
  }

  let shown = job;
  let progress = null;
  if (TERMINAL.has(job.state)) {
    await show(job);
  } else {
    progress = h("progress", { max: 1, value: job.progress, "aria-label": "Progress" });
    body.append(h("div", { class: "card", "aria-live": "polite" }, h("p", {}, "Working on it…"), progress));
  }
  if (!settled(job)) {
    context.onLeave(
      follow(`jobs/${job.id}`, (view) => {
        if (progress) progress.value = view.progress;
        state.className = `badge badge-${view.state}`;
        state.textContent = stateLabel(view.state);
        const ended = TERMINAL.has(view.state) && !TERMINAL.has(shown.state);
        const reported = TERMINAL.has(view.state) && view.report?.state !== shown.report?.state;
        shown = view;
        if (ended || reported) show(view, { inPlace: !ended });
      }, settled),
    );
  }
  return [heading, meta, actions, deleteStatus, body];
}
