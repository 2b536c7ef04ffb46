// Saved profiles: list, rename, delete, download, and start an upload with one.

import { call, download } from "../api.js";
import { clear, formatDate, h, notice } from "../dom.js";
import { describe, handleSubmit } from "../forms.js";
import { methodName } from "../options.js";
import { href } from "../router.js";
import { currentMembership } from "../session.js";

/** Each control's name says which profile it acts on: a screen reader lists them out of their cards. */
function nameControls(item, profile) {
  const labels = {
    use: `Use for new uploads: “${profile.name}”`,
    rename: `Rename “${profile.name}”`,
    json: `Download “${profile.name}” as JSON`,
    cube: `Download “${profile.name}” as .cube`,
    delete: `Delete “${profile.name}”`,
  };
  for (const control of item.querySelectorAll("[data-action]")) control.setAttribute("aria-label", labels[control.dataset.action]);
}

/** What the list shows once its last profile is deleted, or when there is none. */
function noProfiles() {
  return h("p", { class: "empty" }, "No profiles yet. Open a ", h("a", { href: href("/history", { state: "done" }) }, "finished job"), " and save its correction.");
}

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
    nameControls(item, profile);
    rename.hidden = true;
    return `Renamed to “${renamed.name}”.`;
  });
  async function remove() {
    if (!window.confirm(`Delete the profile “${profile.name}”? Jobs already corrected with it keep their results.`)) return;
    clear(status);
    try {
      await call(`profiles/${profile.id}`, { method: "DELETE" });
      const list = item.parentElement;
      item.remove();
      if (list && !list.children.length) list.replaceWith(noProfiles());
      status.append(notice("success", `Deleted “${profile.name}”.`));
      // The button that had focus is gone: the message saying what happened takes it.
      status.setAttribute("tabindex", "-1");
      status.focus();
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
      mayChange ? h("a", { class: "button primary", href: href("/upload", { profile: profile.id }), dataset: { action: "use" } }, "Use for new uploads") : null,
      mayChange ? h("button", { type: "button", dataset: { action: "rename" }, onclick: () => { rename.hidden = false; nameInput.focus(); } }, "Rename") : null,
      h("button", { type: "button", dataset: { action: "json" }, onclick: () => save(profile.files.json) }, "JSON"),
      profile.files.cube ? h("button", { type: "button", dataset: { action: "cube" }, onclick: () => save(profile.files.cube) }, ".cube") : null,
      mayChange ? h("button", { type: "button", class: "danger", dataset: { action: "delete" }, onclick: remove }, "Delete") : null,
    ),
  );
  nameControls(item, profile);
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
      : noProfiles(),
  ];
}

