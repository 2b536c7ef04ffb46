// History: every job, newest first, searchable by file name and filtered by state.

import { call } from "../api.js";
import { field, formatDate, formatNumber, h, select } from "../dom.js";
import { STATES, stateLabel } from "../options.js";
import { href, navigate } from "../router.js";

const PAGE_SIZE = 20;

export async function render(context) {
  const q = context.query.get("q") || "";
  const state = context.query.get("state") || "";
  const page = Math.max(1, Number(context.query.get("page")) || 1);
  const query = { page, page_size: PAGE_SIZE };
  if (q) query.q = q;
  if (state) query.state = state;
  const result = await call(`jobs?${new URLSearchParams(query)}`);
  const pages = Math.max(1, Math.ceil(result.total / PAGE_SIZE));

  const search = h("input", { type: "search", name: "q", value: q, maxlength: 100, placeholder: "Part of a file name" });
  const form = h(
    "form",
    { class: "filters", role: "search" },
    field("Search", search),
    field("State", select("state", STATES, state)),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Apply")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form).entries());
    const next = {};
    if (values.q) next.q = values.q;
    if (values.state) next.state = values.state;
    navigate("/history", next);
  });

  const rows = result.items.map((job) =>
    h(
      "tr",
      { dataset: { jobId: job.id } },
      h("th", { scope: "row" }, h("a", { href: href(`/jobs/${job.id}`) }, job.filename)),
      h("td", {}, h("span", { class: `badge badge-${job.state}` }, stateLabel(job.state))),
      h("td", { class: "num" }, formatNumber(job.delta_e2000_before)),
      h("td", { class: "num" }, formatNumber(job.delta_e2000_after)),
      h("td", {}, job.rating || "—"),
      h("td", {}, formatDate(job.created_at)),
    ),
  );
  const pageLink = (target, label, rel) => {
    const params = { ...(q ? { q } : {}), ...(state ? { state } : {}), page: target };
    return h("a", { href: href("/history", params), rel, class: "button" }, label);
  };

  return [
    h("h1", {}, "History"),
    form,
    h("p", { class: "muted", id: "history-count", "aria-live": "polite" }, `${result.total} job${result.total === 1 ? "" : "s"}${q || state ? " match" : ""}`),
    result.items.length
      ? h(
          "div",
          { class: "table-scroll", tabindex: "0", role: "region", "aria-label": "Jobs" },
          h(
            "table",
            { class: "history-table", id: "history-table" },
            h("thead", {}, h("tr", {}, ["File", "State", "ΔE₀₀ before", "ΔE₀₀ after", "Rating", "Uploaded"].map((title, i) => h("th", { scope: "col", class: i === 2 || i === 3 ? "num" : "" }, title)))),
            h("tbody", {}, rows),
          ),
        )
      : h("p", { class: "empty" }, q || state ? "Nothing matches. Try another search or state." : "No jobs yet. ", q || state ? null : h("a", { href: href("/upload") }, "Upload a photo")),
    pages > 1
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
