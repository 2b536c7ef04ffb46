// Settings: the account, its password, the organisation's members, retention period and rating
// guideline, API keys,
// notifications, webhooks.

import { ApiProblem, call } from "../api.js";
import { href } from "../router.js";
import { cardTable, clear, field, formatDate, h, notice, select } from "../dom.js";
import { PASSWORD_MIN_LENGTH, asSentence, describe, handleSubmit } from "../forms.js";
import { GUIDELINES } from "../options.js";
import { currentMembership, setOrganisation, who } from "../session.js";

const ROLES = [
  ["admin", "Administrator"],
  ["operator", "Operator"],
  ["member", "Member"],
  ["viewer", "Viewer"],
];
/** A role as people read it in a sentence: "is now an operator". */
const ROLE_IN_A_SENTENCE = { admin: "an administrator", operator: "an operator", member: "a member", viewer: "a viewer" };

/** "Administrator", never `admin`; a role this page does not know is shown as the server names it. */
function roleName(role) {
  return (ROLES.find(([value]) => value === role) || [role, role])[1];
}

const SCOPES = [
  ["read", "Read jobs and results"],
  ["upload", "Upload photos"],
  ["admin", "Administer"],
];

/** Lists come as a bare array or under `items`. */
function itemsOf(answer, key) {
  if (Array.isArray(answer)) return answer;
  return answer?.items || answer?.[key] || [];
}

function section(id, title, ...children) {
  return h("section", { class: "card", id, "aria-labelledby": `${id}-title` }, h("h2", { id: `${id}-title` }, title), ...children);
}

function account(context) {
  const user = who.me.user;
  const memberships = who.me.memberships || [];
  const parts = [
    h("dl", { class: "stats" },
      h("div", { class: "stat" }, h("dt", {}, "Name"), h("dd", {}, user.display_name || "—")),
      h("div", { class: "stat" }, h("dt", {}, "Email"), h("dd", { id: "account-email" }, user.email)),
      h("div", { class: "stat" }, h("dt", {}, "Role"), h("dd", {}, currentMembership() ? roleName(currentMembership().role) : "—")),
    ),
  ];
  if (memberships.length > 1) {
    const chooser = select("organisation", memberships.map((m) => [m.organisation_id, `${m.organisation_name} (${roleName(m.role)})`]), who.organisation);
    chooser.addEventListener("change", async () => {
      setOrganisation(chooser.value);
      await context.refreshIdentity();
      window.dispatchEvent(new HashChangeEvent("hashchange"));
    });
    parts.push(field("Organisation", chooser, "Jobs, profiles and keys belong to the organisation chosen here."));
  } else if (memberships.length === 1) {
    parts.push(h("p", {}, "Organisation: ", h("strong", {}, memberships[0].organisation_name)));
  }
  return section("account", "Account", ...parts);
}

function password() {
  const status = h("div", { class: "form-status" });
  const form = h(
    "form",
    { class: "narrow" },
    field("Current password", h("input", { type: "password", name: "current_password", required: true, autocomplete: "current-password" })),
    field(
      "New password",
      h("input", { type: "password", name: "new_password", required: true, minlength: PASSWORD_MIN_LENGTH, autocomplete: "new-password" }),
      `At least ${PASSWORD_MIN_LENGTH} characters.`,
    ),
    status,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Change password")),
  );
  handleSubmit(form, status, async (values) => {
    await call("auth/password/change", { method: "POST", json: values });
    form.reset();
    return "Password changed.";
  });
  return section("password", "Password", form);
}

async function members() {
  const membership = currentMembership();
  if (!membership) return null;
  const org = membership.organisation_id;
  const isAdmin = membership.role === "admin";
  const status = h("div", { class: "form-status" });
  const list = h("tbody", {});

  async function load() {
    const answer = await call(`auth/organisations/${org}/members`);
    clear(list).append(...itemsOf(answer, "members").map(row));
  }

  function row(member) {
    const userId = member.user_id || member.user?.id || member.id;
    const email = member.email || member.user?.email || "";
    const name = member.display_name || member.user?.display_name || "";
    const self = userId === who.me.user.id;
    let roleCell = roleName(member.role);
    if (isAdmin && !self) {
      const chooser = select("role", ROLES, member.role);
      chooser.setAttribute("aria-label", `Role of ${email}`);
      let saved = member.role;
      chooser.addEventListener("change", async () => {
        clear(status);
        try {
          await call(`auth/organisations/${org}/members/${userId}`, { method: "PATCH", json: { role: chooser.value } });
          saved = chooser.value;
          status.append(notice("success", `${email} is now ${ROLE_IN_A_SENTENCE[saved] || saved}.`));
        } catch (error) {
          chooser.value = saved;
          status.append(notice("error", describe(error)));
        }
      });
      roleCell = chooser;
    }
    const remove = isAdmin && !self
      ? h("button", {
          type: "button",
          class: "danger",
          "aria-label": `Remove ${email}`,
          onclick: async () => {
            if (!window.confirm(`Remove ${email} from the organisation?`)) return;
            clear(status);
            try {
              await call(`auth/organisations/${org}/members/${userId}`, { method: "DELETE" });
              await load();
            } catch (error) {
              status.append(notice("error", describe(error)));
            }
          },
        }, "Remove")
      : null;
    return h("tr", {}, h("th", { scope: "row" }, name || email), h("td", {}, email), h("td", {}, roleCell), h("td", {}, remove));
  }

  try {
    await load();
  } catch (error) {
    return section("members", "Organisation members", notice("error", describe(error)));
  }
  const parts = [
    cardTable(h("table", { class: "members-table" }, h("thead", {}, h("tr", {}, ["Name", "Email", "Role", ""].map((t) => h("th", { scope: "col" }, t)))), list)),
    status,
  ];
  if (isAdmin) {
    const addStatus = h("div", { class: "form-status" });
    const form = h(
      "form",
      { class: "inline-form" },
      field("Email of an existing user", h("input", { type: "email", name: "email", required: true })),
      field("Role", select("role", ROLES, "member")),
      h("button", { type: "submit" }, "Add member"),
    );
    handleSubmit(form, addStatus, async (values) => {
      await call(`auth/organisations/${org}/members`, { method: "POST", json: values });
      form.reset();
      await load();
      return `${values.email} added.`;
    });
    parts.push(h("h3", {}, "Add a member"), form, addStatus);
  }
  return section("members", "Organisation members", ...parts);
}

/** The guideline the organisation's reports are rated against; admins change it. */
async function guideline() {
  const membership = currentMembership();
  if (!membership) return null;
  const path = "organisation/settings";
  let current;
  try {
    current = await call(path);
  } catch (error) {
    return section("guideline", "Rating guideline", notice("error", describe(error)));
  }
  const nameOf = (key) => (GUIDELINES.find(([value]) => value === key) || [key, key])[1];
  const summary = h("p", { id: "guideline-summary" });
  const show = (view) => {
    summary.textContent = `Reports are rated against ${nameOf(view.guideline)} unless an upload names another.`;
  };
  show(current);
  const parts = [summary];
  if (membership.role === "admin") {
    const status = h("div", { class: "form-status", id: "guideline-status" });
    const form = h(
      "form",
      { class: "inline-form", id: "guideline-form" },
      field("Guideline", select("guideline", GUIDELINES, current.guideline)),
      h("button", { type: "submit" }, "Save"),
    );
    handleSubmit(form, status, async (values) => {
      const view = await call(path, { method: "PUT", json: { guideline: values.guideline } });
      show(view);
      return `Reports are now rated against ${nameOf(view.guideline)}.`;
    });
    parts.push(form, status);
  }
  return section("guideline", "Rating guideline", ...parts);
}

/** How long the organisation keeps a job's files; admins change it. */
async function retention() {
  const membership = currentMembership();
  if (!membership) return null;
  const path = `auth/organisations/${membership.organisation_id}/retention`;
  let current;
  try {
    current = await call(path);
  } catch (error) {
    if (error instanceof ApiProblem && error.status === 404) {
      return section("retention", "Data retention", h("p", { class: "muted" }, "Data retention is not available on this server yet."));
    }
    return section("retention", "Data retention", notice("error", describe(error)));
  }
  const summary = h("p", { id: "retention-summary" });
  const daysText = (days) => `${days} day${days === 1 ? "" : "s"}`;
  function show(view) {
    const origin = view.days === null ? " (the server’s default)" : "";
    summary.textContent = `A job’s files are kept ${daysText(view.effective_days)} after it ends${origin}.`;
  }
  show(current);
  const parts = [
    summary,
    h(
      "p",
      { class: "muted" },
      "Then its original photo, corrected image, measurements and reports are deleted; the job stays in the history with its ΔE summary, and a profile saved from it stays too.",
    ),
  ];
  if (membership.role === "admin") {
    const status = h("div", { class: "form-status", id: "retention-status" });
    const days = h("input", { type: "number", name: "days", min: 1, max: 3650, step: 1, value: current.days ?? "", id: "retention-days" });
    const form = h(
      "form",
      { class: "inline-form", id: "retention-form" },
      field("Days to keep files", days, `1 to 3650; empty for the server’s default (${daysText(current.default_days)}).`),
      h("button", { type: "submit" }, "Save"),
    );
    handleSubmit(form, status, async (values) => {
      const view = await call(path, { method: "PUT", json: { days: values.days === "" ? null : Number(values.days) } });
      show(view);
      return view.days === null ? "Files are now kept for the server’s default period." : `Files are now kept ${daysText(view.days)}.`;
    });
    parts.push(form, status);
  }
  return section("retention", "Data retention", ...parts);
}

async function apiKeys() {
  const status = h("div", { class: "form-status", id: "api-key-status" });
  const list = h("tbody", { id: "api-key-rows" });

  let maxDays = null;

  async function load() {
    const answer = await call("auth/api-keys");
    maxDays = answer.max_expires_in_days ?? maxDays;
    const keys = itemsOf(answer, "keys");
    clear(list).append(...keys.map(row));
    if (!keys.length) list.append(h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No keys yet.")));
  }

  function row(key) {
    return h(
      "tr",
      { dataset: { keyId: key.id } },
      h("th", { scope: "row" }, key.name),
      h("td", {}, h("code", {}, `${key.prefix || "clk_"}…`)),
      h("td", {}, (key.scopes || []).join(", ")),
      h("td", {}, key.expires_at ? formatDate(key.expires_at) : "never"),
      h("td", {}, key.revoked_at ? h("span", { class: "badge badge-failed" }, `Revoked ${formatDate(key.revoked_at)}`) : h("button", {
        type: "button",
        class: "danger",
        "aria-label": `Revoke ${key.name}`,
        onclick: async () => {
          if (!window.confirm(`Revoke the key “${key.name}”? Programs using it stop working at once.`)) return;
          clear(status);
          try {
            await call(`auth/api-keys/${key.id}`, { method: "DELETE" });
            await load();
            status.append(notice("success", `Revoked “${key.name}”.`));
          } catch (error) {
            status.append(notice("error", describe(error)));
          }
        },
      }, "Revoke")),
    );
  }

  try {
    await load();
  } catch (error) {
    return section("api-keys", "API keys", notice("error", describe(error)));
  }
  // A key acts with its user's role, narrowed by its scopes: a viewer's key reads, whatever it is allowed.
  const readsOnly = currentMembership()?.role === "viewer";
  const scopes = h(
    "fieldset",
    { class: "checks" },
    h("legend", {}, "Allowed to"),
    SCOPES.map(([value, label]) => {
      const beyondRole = readsOnly && value !== "read";
      return h(
        "label",
        { class: "check" },
        h("input", { type: "checkbox", name: "scopes", value, checked: value !== "admin" && !beyondRole, disabled: beyondRole }),
        ` ${label}`,
      );
    }),
    readsOnly ? h("p", { class: "hint" }, "You are a viewer in this organisation, so a key of yours can only read.") : null,
  );
  const form = h(
    "form",
    { class: "narrow", id: "api-key-form" },
    field("Name", h("input", { type: "text", name: "name", required: true, maxlength: 120, placeholder: "e.g. studio scanner" })),
    scopes,
    field(
      "Expires after (days)",
      h("input", { type: "number", name: "expires_in_days", min: 1, max: maxDays, inputmode: "numeric" }),
      `At most ${maxDays} days; leave empty for ${maxDays} days. Every key expires: make a new one before.`,
    ),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Create key")),
  );
  const created = h("div", { id: "api-key-created" });
  handleSubmit(form, status, async (_values, target) => {
    const data = new FormData(target);
    const body = { name: data.get("name"), scopes: data.getAll("scopes") };
    if (data.get("expires_in_days")) body.expires_in_days = Number(data.get("expires_in_days"));
    const key = await call("auth/api-keys", { method: "POST", json: body });
    target.reset();
    const secret = h("input", { type: "text", readonly: true, value: key.key, id: "api-key-secret", class: "secret", "aria-describedby": "api-key-once" });
    clear(created).append(
      notice(
        "success",
        h("p", { id: "api-key-once" }, h("strong", {}, `Key “${key.name}” created. Copy it now: it is shown only once.`)),
        h("div", { class: "inline-form" }, h("label", { for: "api-key-secret", class: "visually-hidden" }, "The new key"), secret, h("button", {
          type: "button",
          onclick: async (event) => {
            secret.select();
            try {
              await navigator.clipboard.writeText(key.key);
              event.target.textContent = "Copied";
            } catch {
              event.target.textContent = "Select and copy";
            }
          },
        }, "Copy")),
      ),
    );
    secret.focus();
    secret.select();
    await load();
  });
  return section(
    "api-keys",
    "API keys",
    h("p", { class: "muted" }, "Programs use a key instead of a password: send it as “Authorization: Bearer clk_…”."),
    cardTable(h("table", { class: "keys-table" }, h("thead", {}, h("tr", {}, ["Name", "Key", "Scopes", "Expires", ""].map((t) => h("th", { scope: "col" }, t)))), list)),
    created,
    h("h3", {}, "Create a key"),
    form,
    status,
  );
}

/** A settings area backed by an optional API: shown only when the gateway answers for it. */
async function optional(id, title, path, draw) {
  try {
    const answer = await call(path);
    return section(id, title, draw(answer, path));
  } catch (error) {
    if (error instanceof ApiProblem && (error.status === 404 || error.status === 405 || error.status === 501)) {
      return section(id, title, h("p", { class: "muted" }, `${title} are not available on this server yet.`));
    }
    if (error instanceof ApiProblem && error.status === 403) {
      return section(id, title, h("p", { class: "muted" }, `Your role in this organisation cannot manage ${title.toLowerCase()}.`));
    }
    return section(id, title, notice("error", describe(error)));
  }
}

const PREFERENCE_KINDS = [
  ["job_finished", "A photo is corrected"],
  ["job_failed", "A photo fails"],
  ["batch_finished", "A batch of photos is finished"],
];
const PREFERENCE_CHANNELS = [
  ["in_app", "Notifications in this app"],
  ["webhooks", "The organisation’s webhooks"],
];
const WEBHOOK_EVENTS = [
  ["job.finished", "Photo corrected"],
  ["job.failed", "Photo failed"],
  ["batch.finished", "Batch finished"],
];

/** Your preferences, and your recent notifications with a way to mark them read. */
function preferencesForm(preferences, path) {
  const status = h("div", { class: "form-status", id: "preferences-status" });
  const checks = (legend, choices) =>
    h("fieldset", { class: "checks" }, h("legend", {}, legend), choices.filter(([name]) => name in preferences).map(([name, label]) =>
      h("label", { class: "check" }, h("input", { type: "checkbox", name, checked: Boolean(preferences[name]) }), ` ${label}`),
    ));
  const form = h(
    "form",
    { class: "narrow", id: "preferences-form" },
    checks("Tell me when", PREFERENCE_KINDS),
    checks("Through", PREFERENCE_CHANNELS),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Save preferences")),
  );
  handleSubmit(form, status, async (_values, target) => {
    const names = [...PREFERENCE_KINDS, ...PREFERENCE_CHANNELS].map(([name]) => name).filter((name) => name in preferences);
    const body = Object.fromEntries(names.map((name) => [name, target.elements[name].checked]));
    await call(path, { method: "PUT", json: body });
    return "Preferences saved.";
  });
  return h("div", {}, form, status);
}

/** A notification's title, linked to the job or the batch it is about. */
function noticeTitle(item) {
  const target = item.job_id ? `/jobs/${item.job_id}` : item.batch_id ? `/batches/${item.batch_id}` : null;
  return target ? h("a", { href: href(target) }, item.title) : item.title;
}

/** Your recent notifications, newest first, with a way to mark them all read. */
function noticesList(answer) {
  const list = h("ul", { class: "plain-list", id: "notification-list" });
  const status = h("div", { class: "form-status" });
  const markAll = h("button", { type: "button", id: "notifications-read-all" }, "Mark all read");

  function draw(listed) {
    const items = itemsOf(listed, "notifications");
    clear(list).append(
      ...items.map((item) =>
        h("li", {},
          h("strong", {}, noticeTitle(item)), " ", asSentence(item.body), " ", h("span", { class: "muted" }, formatDate(item.created_at)),
          item.read_at ? "" : h("span", { class: "badge" }, "new")),
      ),
    );
    if (!items.length) list.append(h("li", { class: "muted" }, "No notifications yet."));
    markAll.hidden = !listed.unread;
  }

  markAll.addEventListener("click", async () => {
    clear(status);
    try {
      await call("notifications/read-all", { method: "POST" });
      window.dispatchEvent(new Event("chromaline:notifications-read"));
      draw(await call("notifications?limit=20"));
      status.append(notice("success", "All notifications marked read."));
    } catch (error) {
      status.append(notice("error", describe(error)));
    }
  });
  draw(answer);
  return h("div", {}, list, markAll, status);
}

function webhookList(answer, path) {
  const status = h("div", { class: "form-status", id: "webhook-status" });
  const created = h("div", { id: "webhook-created" });
  const list = h("ul", { class: "plain-list", id: "webhook-list" });

  function draw(hooks) {
    clear(list).append(...hooks.map((hook) => h("li", { dataset: { webhookId: hook.id } },
      h("code", {}, hook.url), " ", h("span", { class: "muted" }, (hook.events || []).join(", ")), " ",
      h("button", {
        type: "button",
        "aria-label": `Send a test to ${hook.url}`,
        onclick: async () => {
          clear(status);
          try {
            await call(`${path}/${hook.id}/test`, { method: "POST" });
            status.append(notice("success", "Test sent; its delivery is listed through the API."));
          } catch (error) {
            status.append(notice("error", describe(error)));
          }
        },
      }, "Send test"), " ",
      h("button", {
        type: "button",
        class: "danger",
        "aria-label": `Remove ${hook.url}`,
        onclick: async () => {
          clear(status);
          try {
            await call(`${path}/${hook.id}`, { method: "DELETE" });
            await load();
            status.append(notice("success", `Removed ${hook.url}.`));
          } catch (error) {
            status.append(notice("error", describe(error)));
          }
        },
      }, "Remove"))));
    if (!hooks.length) list.append(h("li", { class: "muted" }, "No webhooks."));
  }

  async function load() {
    draw(itemsOf(await call(path), "webhooks"));
  }

  const form = h(
    "form",
    { class: "narrow", id: "webhook-form" },
    field("URL to call", h("input", { type: "url", name: "url", required: true, placeholder: "https://…" })),
    h("fieldset", { class: "checks" }, h("legend", {}, "Send"), WEBHOOK_EVENTS.map(([value, label]) =>
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "events", value, checked: true }), ` ${label}`),
    )),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Add webhook")),
  );
  handleSubmit(form, status, async (_values, target) => {
    const data = new FormData(target);
    const hook = await call(path, { method: "POST", json: { url: data.get("url"), events: data.getAll("events") } });
    target.reset();
    const secret = h("input", { type: "text", readonly: true, value: hook.secret, id: "webhook-secret", class: "secret", "aria-describedby": "webhook-secret-once" });
    clear(created).append(notice(
      "success",
      h("p", { id: "webhook-secret-once" }, h("strong", {}, "Webhook added. Copy its signing secret now: it is shown only once.")),
      h("div", { class: "inline-form" }, h("label", { for: "webhook-secret", class: "visually-hidden" }, "The signing secret"), secret),
    ));
    secret.focus();
    secret.select();
    await load();
  });
  draw(itemsOf(answer, "webhooks"));
  return h(
    "div",
    {},
    h("p", { class: "muted" }, "Each call is signed: check the X-Chromaline-Signature header with the secret (see the webhooks guide)."),
    list,
    created,
    h("h3", {}, "Add a webhook"),
    form,
    status,
  );
}

/** Settings pages: each a few sections, reached from the tabs at the top of every one. */
const PAGES = [
  ["account", "Account", (context) => [account(context), password()]],
  ["organisation", "Organisation", async () => Promise.all([members(), retention(), guideline()])],
  ["api-keys", "API keys", async () => [await apiKeys()]],
  [
    "notifications",
    "Notifications",
    async () =>
      Promise.all([
        optional("recent-notifications", "Notifications", "notifications?limit=20", noticesList),
        optional("notifications", "Notification preferences", "notifications/preferences", preferencesForm),
      ]),
  ],
  ["webhooks", "Webhooks", async () => [await optional("webhooks", "Webhooks", "webhooks", webhookList)]],
];

function tabs(current) {
  return h(
    "nav",
    { class: "sub-nav", "aria-label": "Settings pages" },
    h(
      "ul",
      {},
      PAGES.map(([id, title]) =>
        h("li", {}, h("a", { href: href(`/settings/${id}`), "aria-current": id === current ? "page" : false }, title)),
      ),
    ),
  );
}

export async function render(context) {
  const [id, title, draw] = PAGES.find(([name]) => name === context.params.section) || PAGES[0];
  const sections = await draw(context);
  return [h("h1", {}, `Settings: ${title}`), tabs(id), ...sections];
}
