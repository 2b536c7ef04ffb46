// The operator's view: how the pipeline is doing, and dead letters to replay.

import { call } from "../api.js";
import { cardTable, clear, formatDate, formatNumber, h, notice } from "../dom.js";
import { describe } from "../forms.js";
import { stateLabel } from "../options.js";
import { href } from "../router.js";
import { canOperate } from "../session.js";

function table(caption, head, rows) {
  return cardTable(
    h("table", {}, h("caption", {}, caption), h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows)),
  );
}

function statistics(stats) {
  const states = Object.entries(stats.jobs);
  const latency = Object.entries(stats.stage_latency_seconds || {});
  const depths = Object.entries(stats.queue_depths || {});
  const rate = stats.detection_success_rate;
  return h(
    "section",
    { class: "card", "aria-labelledby": "stats-title", id: "stats" },
    h("h2", { id: "stats-title" }, "Statistics"),
    h(
      "dl",
      { class: "stats" },
      h("div", { class: "stat" }, h("dt", {}, "Jobs"), h("dd", { id: "stats-total" }, states.reduce((sum, [, n]) => sum + n, 0))),
      h("div", { class: "stat" }, h("dt", {}, "Charts found"), h("dd", {}, rate === null ? "—" : `${(rate * 100).toFixed(1)} %`)),
      h("div", { class: "stat" }, h("dt", {}, "Mean ΔE₀₀ before"), h("dd", {}, formatNumber(stats.mean_delta_e2000_before))),
      h("div", { class: "stat" }, h("dt", {}, "Mean ΔE₀₀ after"), h("dd", {}, formatNumber(stats.mean_delta_e2000_after))),
    ),
    h(
      "div",
      { class: "grid" },
      table("Jobs by state", ["State", "Jobs"], states.map(([state, n]) => h("tr", {}, h("th", { scope: "row" }, stateLabel(state)), h("td", { class: "num" }, n)))),
      table("Mean time per stage", ["Stage", "Seconds"], latency.map(([stage, seconds]) => h("tr", {}, h("th", { scope: "row" }, stage.replaceAll("_", " ")), h("td", { class: "num" }, formatNumber(seconds))))),
      depths.length
        ? table("Messages waiting", ["Queue", "Ready"], depths.map(([queue, n]) => h("tr", {}, h("th", { scope: "row" }, queue), h("td", { class: "num" }, typeof n === "object" ? JSON.stringify(n) : n))))
        : h("p", { class: "muted" }, "Queue depths are not available from this bus."),
    ),
  );
}

function deadLetters(letters) {
  const status = h("div", { class: "form-status", id: "dead-letter-status" });
  const rows = letters.map((letter) => {
    const button = h("button", {
      type: "button",
      "aria-label": `Replay ${letter.routing_key} from ${letter.queue}`,
      onclick: async () => {
        button.disabled = true;
        clear(status);
        try {
          await call(`admin/dead-letters/${encodeURIComponent(letter.queue)}/${encodeURIComponent(letter.id)}/replay`, { method: "POST" });
          row.remove();
          status.append(notice("success", `Replayed ${letter.routing_key} onto ${letter.queue}.`));
        } catch (error) {
          button.disabled = false;
          status.append(notice("error", describe(error)));
        }
      },
    }, "Replay");
    const row = h(
      "tr",
      { dataset: { letterId: letter.id, queue: letter.queue } },
      h("th", { scope: "row" }, letter.queue),
      h("td", {}, letter.routing_key),
      h("td", {}, letter.reason || "—"),
      h("td", {}, formatDate(letter.dead_lettered_at)),
      h("td", {}, h("details", {}, h("summary", {}, "Body"), h("pre", { class: "letter-body" }, letter.body))),
      h("td", {}, button),
    );
    return row;
  });
  return h(
    "section",
    { class: "card", "aria-labelledby": "dead-title", id: "dead-letters" },
    h("h2", { id: "dead-title" }, "Dead letters"),
    status,
    letters.length
      ? table("Messages that failed every retry", ["Queue", "Event", "Reason", "When", "Message", ""], rows)
      : h("p", { class: "empty" }, "No dead letters: every message was handled."),
  );
}

/** For platform operators only (the navigation offers it to no one else); anyone else who opens
 * it by its address is told so, and no operator's API is asked (it would answer 403). */
export async function render() {
  if (!canOperate()) {
    return [
      h("h1", {}, "Operator"),
      notice(
        "info",
        "This page is for platform operators: the pipeline's queues, and the messages that failed every retry. ",
        h("a", { href: href("/upload") }, "Go to uploads"),
      ),
    ];
  }
  const [stats, letters] = await Promise.all([
    call("stats"),
    call("admin/dead-letters").catch((error) => ({ error })),
  ]);
  return [
    h("h1", {}, "Operator"),
    statistics(stats),
    letters.error ? notice("error", describe(letters.error)) : deadLetters(letters.items),
  ];
}
