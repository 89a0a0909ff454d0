// The web page's v1.1 helpers (docs/protocol.md, "v1.1"), imported by app.js: reading a message
// with its sender, the resume token kept for this tab, and the delay before each try to come back.

// The sentence shown when the server ends the session for good (`7:<reason>`): never fight back.
export const ENDINGS = {
  "replaced": "You were logged out: the same user logged in somewhere else.",
  "removed": "You were logged out: the server's operator removed this user.",
};

const BACKOFF_BASE_MS = 250;
const BACKOFF_CAP_MS = 10_000;
const TOKEN_KEY = "parley-resume";

/**
 * The delay before try `attempt` (1 for the first): random under a cap that doubles with each try
 * ("full jitter"), so the pages a restart dropped do not all come back at once.
 */
export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt - 1, 30));
  return Math.floor(random() * ceiling);
}

/**
 * A `3:` line's body: `<room>:<sender>:<text>` with `from` (the room empty for a direct
 * message), `<sender>:<text>` on a `--stamp-sender` server, else the text alone.
 */
export function readMessage(body, from, stampSender) {
  if (from) {
    const first = body.indexOf(":");
    const second = body.indexOf(":", first + 1);
    if (second !== -1) {
      const room = body.slice(0, first);
      return { sender: body.slice(first + 1, second), text: body.slice(second + 1), direct: !room };
    }
  }
  if (stampSender) {
    const at = body.indexOf(":");
    return { sender: body.slice(0, at), text: body.slice(at + 1), direct: false };
  }
  return { sender: null, text: body, direct: false };
}

/** The resume token of this tab (sessionStorage: it dies with the tab, and a reload resumes). */
export const savedSession = {
  /** `{ user, token }`, or null. */
  load() {
    try {
      return JSON.parse(sessionStorage.getItem(TOKEN_KEY) ?? "null");
    } catch {
      return null;
    }
  },
  save(user, token) {
    sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ user, token }));
  },
  forget() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};
