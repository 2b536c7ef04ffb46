// Sign up, sign in, and the two halves of a password reset.

import { call } from "../api.js";
import { field, h } from "../dom.js";
import { PASSWORD_MIN_LENGTH, handleSubmit } from "../forms.js";
import { href, navigate } from "../router.js";
import { saveTokens } from "../session.js";

function input(name, type, attrs = {}) {
  return h("input", { name, type, required: true, ...attrs });
}

async function enter(tokens, context) {
  saveTokens(tokens);
  await context.refreshIdentity();
  const next = context.query.get("next");
  location.hash = next && next.startsWith("/") && !next.startsWith("/signin") ? `#${next}` : "#/upload";
}

export function renderSignIn(context) {
  const status = h("div", { class: "form-status" });
  const form = h(
    "form",
    { class: "card narrow", novalidate: false },
    field("Email", input("email", "email", { autocomplete: "username" })),
    field("Password", input("password", "password", { autocomplete: "current-password" })),
    status,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Sign in")),
  );
  handleSubmit(form, status, async (values) => {
    const tokens = await call("auth/login", { method: "POST", json: values, retry: false });
    await enter(tokens, context);
  });
  return [
    h("h1", {}, "Sign in"),
    form,
    h(
      "p",
      { class: "aside" },
      "New here? ",
      h("a", { href: href("/signup") }, "Create an account"),
      " · ",
      h("a", { href: href("/reset") }, "Forgot your password?"),
    ),
  ];
}

export function renderSignUp(context) {
  const status = h("div", { class: "form-status" });
  const form = h(
    "form",
    { class: "card narrow" },
    field("Your name", input("display_name", "text", { autocomplete: "name", maxlength: 120 })),
    field("Email", input("email", "email", { autocomplete: "email" })),
    field(
      "Password",
      input("password", "password", { autocomplete: "new-password", minlength: PASSWORD_MIN_LENGTH }),
      `At least ${PASSWORD_MIN_LENGTH} characters; a passphrase of a few words is easiest to remember.`,
    ),
    field(
      "Organisation",
      input("organisation_name", "text", { autocomplete: "organization", maxlength: 120 }),
      "A new organisation is created and you become its administrator.",
    ),
    status,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Create account")),
  );
  handleSubmit(form, status, async (values) => {
    const created = await call("auth/register", { method: "POST", json: values, retry: false });
    await enter(created, context);
  });
  return [
    h("h1", {}, "Create an account"),
    form,
    h("p", { class: "aside" }, "Already have one? ", h("a", { href: href("/signin") }, "Sign in")),
  ];
}

export function renderReset(context) {
  const token = context.query.get("token");
  const status = h("div", { class: "form-status" });
  if (!token) {
    const form = h(
      "form",
      { class: "card narrow" },
      h("p", {}, "Enter the email you signed up with. If it has an account, a link to set a new password is sent to it."),
      field("Email", input("email", "email", { autocomplete: "email" })),
      status,
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Send the link")),
    );
    handleSubmit(form, status, async (values) => {
      await call("auth/password/reset-request", { method: "POST", json: values, retry: false });
      form.reset();
      return "If that address has an account, a reset link is on its way. It works once and expires soon.";
    });
    return [h("h1", {}, "Reset your password"), form];
  }
  const form = h(
    "form",
    { class: "card narrow" },
    field(
      "New password",
      input("new_password", "password", { autocomplete: "new-password", minlength: PASSWORD_MIN_LENGTH }),
      `At least ${PASSWORD_MIN_LENGTH} characters.`,
    ),
    status,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Set the new password")),
  );
  handleSubmit(form, status, async (values) => {
    await call("auth/password/reset", { method: "POST", json: { token, new_password: values.new_password }, retry: false });
    setTimeout(() => navigate("/signin"), 1500);
    return "Your password is changed. Sign in with it now.";
  });
  return [h("h1", {}, "Set a new password"), form];
}
