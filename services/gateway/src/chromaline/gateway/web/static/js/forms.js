// Form plumbing shared by pages: disable while sending, show the API's own words when it refuses.

import { clear, notice } from "./dom.js";

/** The message a person should read for an error; the API's `detail` when it gave one. */
export function describe(error) {
  if (error?.status === 429) {
    return `${error.detail} Too many attempts; wait a little and try again.`;
  }
  return error?.detail || error?.message || String(error);
}

/**
 * Run `action(values)` on submit. Errors land in `status` (role=alert); `success` may return a
 * message or node to show there instead.
 */
export function handleSubmit(form, status, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const buttons = form.querySelectorAll("button, input[type=submit]");
    buttons.forEach((button) => {
      button.disabled = true;
    });
    clear(status);
    form.setAttribute("aria-busy", "true");
    try {
      const message = await action(Object.fromEntries(new FormData(form).entries()), form);
      if (message) status.append(message instanceof Node ? message : notice("success", message));
    } catch (error) {
      status.append(notice("error", describe(error)));
    } finally {
      form.removeAttribute("aria-busy");
      buttons.forEach((button) => {
        button.disabled = false;
      });
    }
  });
}
