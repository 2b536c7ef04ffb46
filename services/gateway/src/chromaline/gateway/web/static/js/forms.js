// Form plumbing shared by pages: disable while sending, show the API's own words when it refuses.

import { clear, notice } from "./dom.js";
import { PROBLEM_MESSAGES } from "./options.js";

/** The shortest password the server takes by default (`password_min_length`); a server set to ask
 * for more says how many when it refuses one (`weak_password`). */
export const PASSWORD_MIN_LENGTH = 10;

const TOO_MANY = "Too many attempts in a short time. Wait a minute and try again.";

/** "the link expired" → "The link expired." */
export function asSentence(text) {
  const trimmed = String(text).trim();
  if (!trimmed) return trimmed;
  const capital = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?…)]$/.test(capital) ? capital : `${capital}.`;
}

/**
 * The message a person should read for an error: a sentence for its problem code saying what to
 * do next, followed by the API's `detail` when that names something more (a file, a limit).
 */
export function describe(error) {
  const detail = error?.detail || error?.message || String(error);
  const sentence = PROBLEM_MESSAGES[error?.code] || (error?.status === 429 ? TOO_MANY : null);
  if (!sentence) return asSentence(detail);
  return detail && detail !== sentence && error?.code !== "network" ? `${sentence} (${detail})` : sentence;
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
