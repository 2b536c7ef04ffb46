// The app shell: finds out who is signed in, draws the navigation, runs pages.

import { ApiProblem, call, onSessionEnded } from "./api.js";
import { clear, fill, h, notice } from "./dom.js";
import { describe } from "./forms.js";
import { href, match, navigate, parseHash } from "./router.js";
import { canOperate, clearTokens, loadTokens, savedOrganisation, setOrganisation, who } from "./session.js";
import * as auth from "./pages/auth.js";
import * as batch from "./pages/batch.js";
import * as charts from "./pages/charts.js";
import * as history from "./pages/history.js";
import * as operator from "./pages/operator.js";
import * as profiles from "./pages/profiles.js";
import * as result from "./pages/result.js";
import * as settings from "./pages/settings.js";
import * as upload from "./pages/upload.js";

const PUBLIC = true;
const routes = [
  { path: "/", title: "Upload", render: upload.render },
  { path: "/upload", title: "Upload", render: upload.render },
  { path: "/signin", title: "Sign in", render: auth.renderSignIn, public: PUBLIC },
  { path: "/signup", title: "Create an account", render: auth.renderSignUp, public: PUBLIC },
  { path: "/reset", title: "Reset your password", render: auth.renderReset, public: PUBLIC },
  { path: "/batches/:id", title: "Progress", render: batch.render },
  { path: "/jobs/:id", title: "Result", render: result.render },
  { path: "/history", title: "History", render: history.render },
  { path: "/profiles", title: "Profiles", render: profiles.render },
  { path: "/charts", title: "Charts", render: charts.render },
  { path: "/settings", title: "Settings", render: settings.render },
  { path: "/settings/:section", title: "Settings", render: settings.render },
  { path: "/operator", title: "Operator", render: operator.render },
];

const NAV = [
  ["/upload", "Upload"],
  ["/history", "History"],
  ["/profiles", "Profiles"],
  ["/charts", "Charts"],
  ["/settings", "Settings"],
  ["/operator", "Operator", () => canOperate()],
];

let leaving = [];
/** Pages shown so far: the first leaves focus at the top, so Tab reaches "Skip to content" first. */
let shown = 0;
/** Counts calls of show(): a page whose render finishes after a newer one started is dropped. */
let showing = 0;

/** Learn who is signed in; without tokens nobody is, and the API is not asked (it would answer 401,
 * which the browser logs as an error on every signed-out visit). */
export async function identify() {
  who.me = null;
  if (!loadTokens()) return;
  try {
    who.me = await call("auth/me");
    const memberships = who.me.memberships || [];
    const saved = savedOrganisation();
    const chosen =
      memberships.find((m) => m.organisation_id === saved) ||
      memberships.find((m) => m.organisation_id === who.me.organisation_id) ||
      memberships[0];
    if (chosen) setOrganisation(chosen.organisation_id);
  } catch (error) {
    who.me = null;
    if (!(error instanceof ApiProblem && error.status === 401)) throw error;
  }
}

/** The bell: unread notifications, refreshed on every page; hidden where the server has none. */
async function drawBell() {
  const bell = document.getElementById("bell");
  if (!who.me) {
    bell.hidden = true;
    return;
  }
  try {
    const answer = await call("notifications?unread=true&limit=1");
    const unread = answer.unread || 0;
    bell.hidden = false;
    bell.setAttribute("aria-label", unread ? `Notifications: ${unread} unread` : "Notifications: none unread");
    const count = document.getElementById("bell-count");
    count.textContent = unread > 99 ? "99+" : String(unread);
    count.hidden = unread === 0;
  } catch {
    bell.hidden = true;
  }
}

function toggleMenu(open) {
  const button = document.getElementById("menu-button");
  button.setAttribute("aria-expanded", String(open));
  document.getElementById("main-nav").classList.toggle("open", open);
}

function drawNav(path) {
  toggleMenu(false);
  const nav = clear(document.getElementById("main-nav"));
  const list = h("ul", { class: "nav-list", id: "nav-list" });
  if (who.me) {
    for (const [target, label, visible] of NAV) {
      if (visible && !visible()) continue;
      const current = path === target || (target === "/upload" && path === "/") || path.startsWith(`${target}/`);
      list.append(h("li", {}, h("a", { href: href(target), "aria-current": current ? "page" : false }, label)));
    }
  }
  if (who.me) {
    list.append(
      h(
        "li",
        {},
        h("button", { type: "button", class: "link-button", onclick: signOut }, "Sign out"),
      ),
    );
  } else {
    list.append(h("li", {}, h("a", { href: href("/signin") }, "Sign in")));
    list.append(h("li", {}, h("a", { href: href("/signup") }, "Sign up")));
  }
  nav.append(list);
  drawBell();
}

async function signOut() {
  const tokens = loadTokens();
  if (tokens?.refresh_token) {
    try {
      await call("auth/logout", { method: "POST", json: { refresh_token: tokens.refresh_token }, retry: false });
    } catch {
      // The tokens are forgotten below either way; an expired session is already signed out.
    }
  }
  clearTokens();
  who.me = null;
  navigate("/signin");
}

function showError(main, error) {
  clear(main).append(
    h("h1", { tabindex: "-1" }, "Something went wrong"),
    notice("error", describe(error)),
    h("p", {}, h("a", { href: href("/upload") }, "Back to uploads")),
  );
}

async function show() {
  const current = ++showing;
  leaving.forEach((stop) => stop());
  leaving = [];
  const { path, query } = parseHash();
  const main = document.getElementById("main");
  const found = match(routes, path);
  drawNav(path);
  if (!found) {
    document.title = "Not found · Chromaline";
    clear(main).append(h("h1", { tabindex: "-1" }, "Page not found"), h("p", {}, h("a", { href: href("/upload") }, "Go to uploads")));
    return;
  }
  if (!found.route.public && !who.me) {
    navigate("/signin", { next: location.hash.slice(1) });
    return;
  }
  document.title = `${found.route.title} · Chromaline`;
  const context = {
    params: found.params,
    query,
    main,
    onLeave: (stop) => leaving.push(stop),
    refreshIdentity: async () => {
      await identify();
      drawNav(path);
    },
  };
  clear(main).append(h("p", { class: "loading" }, "Loading…"));
  try {
    const nodes = await found.route.render(context);
    if (current !== showing || parseHash().path !== path) return;
    fill(main, nodes);
  } catch (error) {
    showError(main, error);
  }
  const heading = main.querySelector("h1");
  if (heading && shown++ > 0) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

onSessionEnded(() => {
  who.me = null;
  navigate("/signin", { next: location.hash.slice(1) });
});

async function start() {
  document.getElementById("menu-button").addEventListener("click", () => {
    toggleMenu(document.getElementById("menu-button").getAttribute("aria-expanded") !== "true");
  });
  document.getElementById("skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    document.getElementById("main").focus();
  });
  try {
    await identify();
  } catch (error) {
    showError(document.getElementById("main"), error);
    return;
  }
  window.addEventListener("hashchange", show);
  window.addEventListener("chromaline:notifications-read", drawBell);
  await show();
}

start();
