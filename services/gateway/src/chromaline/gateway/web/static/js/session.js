// The signed-in user's tokens, kept in sessionStorage: they last as long as the browser tab.

const KEY = "chromaline.session";

export function loadTokens() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || "null");
  } catch {
    return null;
  }
}

export function saveTokens(tokens) {
  sessionStorage.setItem(
    KEY,
    JSON.stringify({ access_token: tokens.access_token, refresh_token: tokens.refresh_token }),
  );
}

export function clearTokens() {
  sessionStorage.removeItem(KEY);
}

/** What the app knows of who is signed in; `mode` is "open" when the gateway has no accounts. */
export const who = { mode: "unknown", me: null, organisation: null };

export function currentMembership() {
  const memberships = who.me?.memberships || [];
  return memberships.find((m) => m.organisation_id === who.organisation) || memberships[0] || null;
}

export function setOrganisation(id) {
  who.organisation = id;
  sessionStorage.setItem(`${KEY}.organisation`, id);
}

export function savedOrganisation() {
  return sessionStorage.getItem(`${KEY}.organisation`);
}

/** Platform operators (a role apart from any organisation's) see queues and dead letters; everyone does without accounts. */
export function canOperate() {
  if (who.mode === "open") return true;
  return who.me?.platform_operator === true;
}
