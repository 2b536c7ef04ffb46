// Follow a job or batch as it changes: a WebSocket when it works, polling when it does not.

import { call, renewIfDue, socketUrl } from "./api.js";

const POLL_MS = 1000;

/** A refusal that asking again will not change (not found, not allowed): stop following. */
function refusedForGood(error) {
  return error?.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429;
}

/**
 * Call `onView(view)` with each new view of `path` ("jobs/<id>" or "batches/<id>") until
 * `finished(view)`. Returns a function that stops following.
 */
export function follow(path, onView, finished, onError = () => {}) {
  let stopped = false;
  let socket = null;
  let timer = null;
  let last = null;

  function deliver(view) {
    last = view;
    onView(view);
  }

  async function poll() {
    if (stopped) return;
    try {
      const view = await call(path);
      if (stopped) return;
      deliver(view);
      if (finished(view)) return;
    } catch (error) {
      onError(error);
      if (refusedForGood(error)) return;
    }
    timer = setTimeout(poll, POLL_MS);
  }

  function fallBack() {
    socket = null;
    if (!stopped && !(last && finished(last))) poll();
  }

  async function open() {
    await renewIfDue();
    if (stopped) return;
    try {
      socket = new WebSocket(socketUrl(`${path}/events`));
      socket.addEventListener("message", (event) => {
        if (!stopped) deliver(JSON.parse(event.data));
      });
      socket.addEventListener("close", fallBack);
    } catch {
      poll();
    }
  }

  open();

  return () => {
    stopped = true;
    clearTimeout(timer);
    if (socket) {
      socket.removeEventListener("close", fallBack);
      socket.close();
    }
  };
}
