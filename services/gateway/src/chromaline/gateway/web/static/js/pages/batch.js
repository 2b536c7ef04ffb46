// Live progress of a batch: overall and per file, announced to screen readers as files finish.

import { download } from "../api.js";
import { announce, clear, formatNumber, h, notice } from "../dom.js";
import { describe } from "../forms.js";
import { follow } from "../live.js";
import { MANUAL_CORNER_REASONS, REASONS, TERMINAL, stateLabel } from "../options.js";
import { href } from "../router.js";
import { currentMembership } from "../session.js";

/** A failed job the person can put right by showing where the chart is: a link that says so. */
function cornersLink(job) {
  if (job.state !== "failed" || !MANUAL_CORNER_REASONS.has(job.reason) || currentMembership()?.role === "viewer") return null;
  const words = job.reason === "low_confidence" ? "Is this your chart? Confirm it" : "Show where the chart is";
  return h("a", { href: href(`/jobs/${job.id}`), class: "corners-link", "aria-label": `${words}: ${job.filename}` }, words);
}

/** What a row calls its photo: a deleted job's name is no longer told. */
function photoName(job) {
  return job.state === "deleted" ? "A deleted photo" : job.filename;
}

function jobRow(job) {
  const name = TERMINAL.has(job.state) && job.state !== "deleted"
    ? h("a", { href: href(`/jobs/${encodeURIComponent(job.id)}`) }, job.filename)
    : photoName(job);
  const putRight = cornersLink(job);
  const outcome = job.state === "failed"
    ? [h("span", { class: "error-text" }, REASONS[job.reason] || job.message || job.reason || "Failed"), putRight ? " " : null, putRight]
    : job.delta_e2000_after !== null && (job.state === "done" || job.state === "expired")
      ? `ΔE₀₀ ${formatNumber(job.delta_e2000_before)} → ${formatNumber(job.delta_e2000_after)}`
      : job.state === "done" && job.options?.profile
        ? "Corrected with a saved profile"
        : "";
  return h(
    "li",
    { class: `job-row state-${job.state}`, dataset: { jobId: job.id, state: job.state } },
    h("div", { class: "job-name" }, name),
    h("progress", { max: 1, value: job.progress, "aria-label": `${photoName(job)} progress` }),
    h("span", { class: `badge badge-${job.state}` }, stateLabel(job.state)),
    h("span", { class: "job-outcome" }, outcome),
  );
}

export function render(context) {
  const id = context.params.id;
  const summary = h("p", { class: "batch-summary", id: "batch-summary" }, "Connecting…");
  const overall = h("progress", { max: 1, value: 0, id: "batch-progress", "aria-labelledby": "batch-summary" });
  const list = h("ul", { class: "job-list", id: "batch-jobs" });
  const actions = h("div", { class: "actions" });
  const errors = h("div", {});
  /** Why progress could not be fetched just now; cleared by the next view that arrives. */
  const connection = h("div", {});
  const announced = new Map();

  function draw(view) {
    clear(connection);
    overall.value = view.progress;
    const failed = view.states.failed || 0;
    const deleted = view.states.deleted || 0;
    const apart = [failed ? `${failed} failed` : "", deleted ? `${deleted} deleted` : ""].filter(Boolean);
    summary.textContent = view.done
      ? `All ${view.total} finished: ${[`${view.total - failed - deleted} corrected`, ...apart].join(", ")}.`
      : `${view.finished} of ${view.total} finished`;
    clear(list).append(...view.jobs.map(jobRow));
    for (const job of view.jobs) {
      if (announced.get(job.id) !== job.state && TERMINAL.has(job.state)) {
        announce(`${photoName(job)}: ${stateLabel(job.state)}`);
      }
      announced.set(job.id, job.state);
    }
    clear(actions);
    if (view.done) {
      if (view.total === 1 && view.jobs.length === 1) {
        actions.append(h("a", { class: "button primary", href: href(`/jobs/${view.jobs[0].id}`) }, "See the result"));
      }
      if (view.states.done) {
        actions.append(
          h(
            "button",
            {
              type: "button",
              onclick: async () => {
                clear(errors);
                try {
                  await download(view.archive);
                } catch (error) {
                  errors.append(notice("error", describe(error)));
                }
              },
            },
            "Download all as ZIP",
          ),
        );
      }
      if (currentMembership()?.role !== "viewer") actions.append(h("a", { class: "button", href: href("/upload") }, "Upload more"));
    }
  }

  context.onLeave(
    follow(`batches/${encodeURIComponent(id)}`, draw, (view) => view.done, (error) => {
      clear(connection).append(notice("error", describe(error)));
    }),
  );

  return [
    h("h1", {}, "Progress"),
    h("section", { class: "card", "aria-label": "Batch progress" }, summary, overall, list, actions, errors, connection),
  ];
}
