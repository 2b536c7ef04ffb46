// Saved profiles: list, rename, delete, download, and start an upload with one.

import { call, download } from "../api.js";
import { clear, formatDate, h, notice } from "../dom.js";
import { describe, handleSubmit } from "../forms.js";
import { methodName } from "../options.js";
import { href } from "../router.js";
import { currentMembership } from "../session.js";

function profileItem(profile, status, mayChange) {
  const nameInput = h("input", { type: "text", name: "name", value: profile.name, required: true, maxlength: 120, id: `rename-${profile.id}` });
  const title = h("h2", { class: "profile-name" }, profile.name);
  const rename = h(
    "form",
    { class: "inline-form", hidden: true },
    h("label", { for: nameInput.id }, "New name"),
    nameInput,
    h("button", { type: "submit", class: "primary" }, "Save"),
    h("button", { type: "button", onclick: () => { rename.hidden = true; nameInput.value = profile.name; } }, "Cancel"),
  );
  handleSubmit(rename, status, async (values) => {
    const renamed = await call(`profiles/${profile.id}`, { method: "PATCH", json: { name: values.name } });
    profile.name = renamed.name;
    title.textContent = renamed.name;
    rename.hidden = true;
    return `Renamed to “${renamed.name}”.`;
  });
  async function remove() {
    if (!window.confirm(`Delete the profile “${profile.name}”? Jobs already corrected with it keep their results.`)) return;
    clear(status);
    try {
      await call(`profiles/${profile.id}`, { method: "DELETE" });
      item.remove();
      status.append(notice("success", `Deleted “${profile.name}”.`));
    } catch (error) {
      status.append(notice("error", describe(error)));
    }
  }
  async function save(path) {
    clear(status);
    try {
      await download(path);
    } catch (error) {
      status.append(notice("error", describe(error)));
    }
  }
  const item = h(
    "li",
    { class: "card profile", dataset: { profileId: profile.id } },
    title,
    h(
      "p",
      { class: "muted" },
      `${methodName(profile.method)} · saved ${formatDate(profile.created_at)} · from `,
      h("a", { href: href(`/jobs/${profile.source_job_id}`) }, "this job"),
    ),
    rename,
    h(
      "div",
      { class: "actions" },
      mayChange ? h("a", { class: "button primary", href: href("/upload", { profile: profile.id }) }, "Use for new uploads") : null,
      mayChange ? h("button", { type: "button", onclick: () => { rename.hidden = false; nameInput.focus(); } }, "Rename") : null,
      h("button", { type: "button", onclick: () => save(profile.files.json) }, "JSON"),
      profile.files.cube ? h("button", { type: "button", onclick: () => save(profile.files.cube) }, ".cube") : null,
      mayChange ? h("button", { type: "button", class: "danger", onclick: remove }, "Delete") : null,
    ),
  );
  return item;
}

export async function render() {
  const { items } = await call("profiles");
  const mayChange = currentMembership()?.role !== "viewer";
  const status = h("div", { class: "form-status", id: "profiles-status" });
  return [
    h("h1", {}, "Profiles"),
    h("p", { class: "lead" }, "A profile is the correction measured from one photo's chart, kept to correct others taken under the same light. Save one from a result page."),
    status,
    items.length
      ? h("ul", { class: "profile-list", id: "profile-list" }, items.map((profile) => profileItem(profile, status, mayChange)))
      : h("p", { class: "empty" }, "No profiles yet. Open a ", h("a", { href: href("/history", { state: "done" }) }, "finished job"), " and save its correction."),
  ];
}

