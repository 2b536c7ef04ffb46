// The signed-in user's tokens, kept in sessionStorage: they last as long as the browser tab.

const KEY = "chromaline.session";

export function loadTokens() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || "null");
  } catch {
    return null;
  }
}

/** Seconds before an access token expires that the app renews it instead of sending it. */
const RENEW_BEFORE_SECONDS = 30;

/** Keep the tokens of a sign-in or refresh, with when to renew the access token: timed by this
 * browser's clock from `expires_in`, so a clock set wrong does not matter. */
export function saveTokens(tokens) {
  const lifetime = Number(tokens.expires_in);
  const renewAt = lifetime > 0 ? Date.now() + Math.max(0, lifetime - RENEW_BEFORE_SECONDS) * 1000 : null;
  sessionStorage.setItem(
    KEY,
    JSON.stringify({ access_token: tokens.access_token, refresh_token: tokens.refresh_token, renew_at: renewAt }),
  );
}

/** Whether the access token is about to expire, so a request sent with it would be refused. */
export function renewalDue() {
  const renewAt = loadTokens()?.renew_at;
  return typeof renewAt === "number" && Date.now() >= renewAt;
}

export function clearTokens() {
  sessionStorage.removeItem(KEY);
}

/** What the app knows of who is signed in (`me`: null when nobody is). */
export const who = { me: null, organisation: null };

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

/** Platform operators (a role apart from any organisation's) see queues and dead letters. */
export function canOperate() {
  return who.me?.platform_operator === true;
}
