// Keeps the page's room list true without a Refresh button (imported by app.js). The protocol
// pushes nothing about other rooms, so the page asks again (`1`, docs/protocol.md):
// - soon after each join or leave in its own room (`4:`/`5:`), at most once every MIN_GAP_MS, so a
//   busy room costs each member one list per 2 s at most;
// - every PERIOD_MS while the chat is on screen and the tab visible (people making rooms, or moving
//   between other rooms, reach us no other way), and at once when the tab becomes visible again.
// Cost: one `1` line and one reply (the whole public list) per page per PERIOD_MS at most, and
// none from a hidden tab. An error to a list the page asked for by itself is not shown.

export const PERIOD_MS = 15_000;
export const MIN_GAP_MS = 2_000;

/** `send(line)` sends a line; `active()` says whether a list is wanted now (logged in, on screen). */
export function roomLister(send, active) {
  let lastAt = -Infinity;
  let timer;
  let auto = false; // the last `1` was sent by the page itself

  function sendList(byHand) {
    clearTimeout(timer);
    timer = undefined;
    lastAt = Date.now();
    auto = !byHand;
    send("1");
  }

  /** Lists now if it has been MIN_GAP_MS since the last list, else once the gap has passed. */
  function soon() {
    if (!active() || timer !== undefined) return;
    const wait = lastAt + MIN_GAP_MS - Date.now();
    if (wait <= 0) sendList(false);
    else timer = setTimeout(() => active() && sendList(false), wait);
  }

  setInterval(() => {
    if (active() && document.visibilityState !== "hidden") sendList(false);
  }, PERIOD_MS);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") soon();
  });

  return {
    /** A list now: asked for by the person (`byHand`: Refresh), or after a join or a login. */
    now: (byHand = false) => sendList(byHand),
    soon,
    /** Whether an error answering `1` should stay quiet (the page asked by itself). */
    quiet: () => auto,
  };
}
