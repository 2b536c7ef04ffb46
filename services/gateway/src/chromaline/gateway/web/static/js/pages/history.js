// History: every job, newest first, searchable by file name and filtered by state.

import { call, fetchBlob } from "../api.js";
import { field, formatDate, formatNumber, h, select } from "../dom.js";
import { RATING_LEVELS, STATES, ratingOf, stateLabel } from "../options.js";
import { href, navigate } from "../router.js";

const PAGE_SIZE = 20;
const FILTERS = ["q", "state", "since", "until", "stars", "level"];
/** The levels of both guidelines an organisation may rate against: a FADGI star count goes to the
 * API as `stars`, a Metamorfoze level as `level`. */
const METAMORFOZE_CHOICES = ["Full", "Light", "below Light"];
const RATING_CHOICES = [
  ["", "Any rating"],
  ...RATING_LEVELS.map(({ stars }) => [String(stars), `FADGI ${stars ? `${stars}-star` : "below 1-star"}`]),
  ...METAMORFOZE_CHOICES.map((level) => [level, `Metamorfoze ${level}`]),
];

function ratingCell(job) {
  const rating = ratingOf(job.rating);
  if (!rating) return "—";
  return h("span", { class: `rating-badge rating-small rating-${rating.tone}`, title: rating.words }, rating.label);
}

/** A job's small picture, fetched with the session's headers once the row is drawn; a blank tile without one. */
function thumbnailCell(job, urls) {
  const cell = h("td", { class: "thumb-cell", dataset: { label: "Photo" } }, h("span", { class: "thumb thumb-kind", "aria-hidden": "true" }));
  const path = job.files?.["thumbnail.jpg"];
  if (path) {
    fetchBlob(path)
      .then(({ blob }) => {
        const url = URL.createObjectURL(blob);
        urls.push(url);
        cell.replaceChildren(h("img", { class: "thumb", src: url, alt: "", width: 56, height: 56 }));
      })
      .catch(() => {});
  }
  return cell;
}

function profileCell(job, profiles) {
  // A job that measured no chart (it failed, or has not got that far) names none.
  if (!job.profile_source_job_id) return job.chart_type ? h("span", { class: "muted" }, "Own chart") : "—";
  const profile = profiles.find((candidate) => candidate.source_job_id === job.profile_source_job_id);
  return profile ? h("a", { href: href("/profiles") }, profile.name) : "A deleted profile";
}

export async function render(context) {
  const chosen = Object.fromEntries(FILTERS.map((name) => [name, context.query.get(name) || ""]));
  const { q, state } = chosen;
  const filtered = FILTERS.some((name) => chosen[name]);
  const page = Math.max(1, Number(context.query.get("page")) || 1);
  const query = { page, page_size: PAGE_SIZE };
  for (const name of FILTERS) if (chosen[name]) query[name] = chosen[name];
  const [result, profiles] = await Promise.all([
    call(`jobs?${new URLSearchParams(query)}`),
    call("profiles").then((answer) => answer.items).catch(() => []),
  ]);
  const pages = Math.max(1, Math.ceil(result.total / PAGE_SIZE));

  const search = h("input", { type: "search", name: "q", value: q, maxlength: 100, placeholder: "Part of a file name" });
  const form = h(
    "form",
    { class: "history-search", role: "search" },
    field("Search", search),
    h(
      "details",
      { class: "more-filters", open: FILTERS.some((name) => name !== "q" && chosen[name]) },
      h("summary", {}, "Filter by state, rating or date"),
      h(
        "div",
        { class: "filters" },
        field("State", select("state", STATES, state)),
        field("Rating", select("rating", RATING_CHOICES, chosen.stars || chosen.level)),
        field("From", h("input", { type: "date", name: "since", value: chosen.since })),
        field("To", h("input", { type: "date", name: "until", value: chosen.until })),
      ),
    ),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Apply")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form).entries());
    values[METAMORFOZE_CHOICES.includes(values.rating) ? "level" : "stars"] = values.rating;
    navigate("/history", Object.fromEntries(FILTERS.filter((name) => values[name]).map((name) => [name, values[name]])));
  });

  const urls = [];
  context.onLeave(() => urls.forEach((url) => URL.revokeObjectURL(url)));
  const rows = result.items.map((job) =>
    h(
      "tr",
      { dataset: { jobId: job.id } },
      thumbnailCell(job, urls),
      h("th", { scope: "row" }, h("a", { href: href(`/jobs/${job.id}`) }, job.filename), job.sent_again_from ? h("span", { class: "muted sent-again" }, " (sent again)") : null),
      h("td", { dataset: { label: "State" } }, h("span", { class: `badge badge-${job.state}` }, stateLabel(job.state))),
      h("td", { class: "num", dataset: { label: "ΔE₀₀ before" } }, formatNumber(job.delta_e2000_before)),
      h("td", { class: "num", dataset: { label: "ΔE₀₀ after" } }, formatNumber(job.delta_e2000_after)),
      h("td", { class: "rating-cell", dataset: { label: "Rating" } }, ratingCell(job)),
      h("td", { dataset: { label: "Profile" } }, profileCell(job, profiles)),
      h("td", { dataset: { label: "Uploaded" } }, formatDate(job.created_at)),
    ),
  );
  const pageLink = (target, label, rel) => {
    const params = { ...Object.fromEntries(FILTERS.filter((name) => chosen[name]).map((name) => [name, chosen[name]])), page: target };
    return h("a", { href: href("/history", params), rel, class: "button" }, label);
  };

  return [
    h("h1", {}, "History"),
    form,
    h("p", { class: "muted", id: "history-count", "aria-live": "polite" }, `${result.total} job${result.total === 1 ? "" : "s"}${filtered ? " match" : ""}`),
    page > pages && result.total
      ? h(
          "p",
          { class: "empty" },
          `There is no page ${page}: the history has ${pages} page${pages === 1 ? "" : "s"}${filtered ? " of matches" : ""}. `,
          pageLink(pages, `Go to the last page (${pages})`),
        )
      : result.items.length
      ? h(
          "div",
          { class: "table-scroll card-table", tabindex: "0", role: "region", "aria-label": "Jobs" },
          h(
            "table",
            { class: "history-table", id: "history-table" },
            h("thead", {}, h("tr", {}, ["Photo", "File", "State", "ΔE₀₀ before", "ΔE₀₀ after", "Rating", "Profile", "Uploaded"].map((title, i) => h("th", { scope: "col", class: i === 3 || i === 4 ? "num" : "" }, title)))),
            h("tbody", {}, rows),
          ),
        )
      : h("p", { class: "empty" }, filtered ? "Nothing matches. Try another search or fewer filters." : "No jobs yet. ", filtered ? null : h("a", { href: href("/upload") }, "Upload a photo")),
    pages > 1 && page <= pages
      ? h(
          "nav",
          { class: "pagination", "aria-label": "Pages" },
          page > 1 ? pageLink(page - 1, "Previous", "prev") : null,
          h("span", {}, `Page ${page} of ${pages}`),
          page < pages ? pageLink(page + 1, "Next", "next") : null,
        )
      : null,
  ];
}
