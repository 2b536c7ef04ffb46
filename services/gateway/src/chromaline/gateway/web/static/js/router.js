// Routing by the URL fragment (#/history?q=...): the gateway serves one page and links stay shareable.

export function parseHash(hash = location.hash) {
  const text = hash.replace(/^#/, "") || "/";
  const [path, search = ""] = text.split("?");
  return { path: path || "/", query: new URLSearchParams(search) };
}

export function href(path, query) {
  const search = query ? new URLSearchParams(query).toString() : "";
  return `#${path}${search ? `?${search}` : ""}`;
}

export function navigate(path, query) {
  const target = href(path, query);
  if (location.hash === target) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = target;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Find the route whose pattern ("/jobs/:id") matches `path`; its params by name. An `:id` must
 * be a UUID: pages put it into API paths, and an address must not choose where they call. */
export function match(routes, path) {
  const parts = path.split("/").filter(Boolean);
  for (const route of routes) {
    const pattern = route.path.split("/").filter(Boolean);
    if (pattern.length !== parts.length) continue;
    const params = {};
    const ok = pattern.every((piece, i) => {
      if (piece.startsWith(":")) {
        let value;
        try {
          value = decodeURIComponent(parts[i]);
        } catch {
          return false;
        }
        params[piece.slice(1)] = value;
        return piece !== ":id" || UUID.test(value);
      }
      return piece === parts[i];
    });
    if (ok) return { route, params };
  }
  return null;
}
