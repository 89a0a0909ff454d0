// Parley's web page: one WebSocket to the server that served the page, speaking the line protocol
// of docs/protocol.md (one line per frame). No framework and no build step; the server embeds this
// file as it is. It asks for the v1.1 features `from`, `why` and `resume`: messages show their
// sender, and a lost connection (or `7:shutdown`) is retried with backoff and jitter, resuming the
// session by its token (kept in sessionStorage, so a reload resumes too) and rejoining the room.
// Against a v1 server (`8:` answered `9:?:malformed`) it falls back to what v1 gives.

import { backoffDelay, ENDINGS, readMessage, savedSession } from "./resume.js";
import { roomLister } from "./rooms.js";
import {
  $,
  logEntry,
  renderMembers as showMembers,
  renderRooms,
  setStatus,
  showChat as showScreen,
  updateMode,
} from "./view.js";

const stampSender = document.querySelector('meta[name="parley-stamp-sender"]')?.content === "true";

const REASONS = {
  "malformed": "the server could not read that command",
  "too-long": "that line was too long; the server closed the connection",
  "bad-name": "that is not a valid room name (no spaces, commas or colons; at most 64 bytes)",
  "room-password": "wrong room password",
  "room-limit": "the server has as many rooms as it allows",
  "not-in-room": "join a room first",
  "not-online": "not online",
  "too-many-targets": "too many recipients",
  "rate-limited": "slow down: too many lines too fast",
  "server-full": "the server is full; try again later",
  "server-error": "the server failed; try again",
};

const state = {
  socket: null,
  user: "",
  loggingIn: false,
  loggedIn: false,
  room: "",
  members: [],
  features: [],
  askedFeatures: false, // our `8:` is not answered yet
  pendingLogin: null,
  password: null, // kept in memory only, to log in again if the token is refused
  roomPassword: "",
  lastReason: null,
  resuming: false, // the pending login is a `6:` resume
  comingBack: false, // the pending login follows a lost connection
  attempt: 0,
  leaving: false, // the person pressed "log out"
  retry: undefined, // the timer of the next try to come back
};

function forgetSession() {
  savedSession.forget();
  state.password = null;
}

const showChat = (visible) => showScreen(visible, state.user);
const renderMembers = () => showMembers(state.room, state.members);

function send(line) {
  if (state.socket?.readyState === WebSocket.OPEN) state.socket.send(line);
}

const rooms = roomLister(send, () => state.loggedIn && !$("chat-view").hidden);

/** Handles one line from the server. */
function receive(line) {
  const colon = line.indexOf(":");
  const code = colon === -1 ? line : line.slice(0, colon);
  const rest = colon === -1 ? "" : line.slice(colon + 1);
  switch (code) {
    case "0":
      if (rest !== "-1") {
        loggedIn();
      } else if (state.loggingIn && state.resuming) {
        // The token was refused (too old, or the password changed): the password, if we have it.
        state.resuming = false;
        savedSession.forget();
        if (state.password !== null) send(`0:${state.user}:${state.password}`);
        else stop("Your session has expired: please log in again.");
      } else if (state.loggingIn && state.comingBack) {
        stop(
          "The server refused the password after reconnecting: please log in again.",
          "login failed",
        );
      } else if (state.loggingIn) {
        const busy = state.lastReason === "busy";
        state.loggingIn = false;
        setStatus(busy ? "server busy" : "login failed", false);
        $("login-error").textContent = busy
          ? "The server is busy: try again in a moment."
          : "Wrong username or password.";
        $("login-button").disabled = false;
      } else if (state.loggedIn && state.lastReason === "shutdown") {
        state.socket?.close(); // a draining server: come back after a random delay
      } else if (state.loggedIn) {
        stop(
          ENDINGS[state.lastReason] ?? "You were logged out (the same user logged in elsewhere).",
        );
      }
      state.lastReason = null;
      break;
    case "1": {
      const rooms = rest === "" ? [] : rest.split(":").map((field) => {
        const [name, ...members] = field.split(",");
        return { name, members };
      });
      renderRooms(rooms, state.room);
      break;
    }
    case "2": {
      const at = rest.indexOf(":");
      state.room = rest.slice(0, at);
      if (state.joining?.room === state.room) state.roomPassword = state.joining.password;
      state.joining = null;
      state.members = rest.slice(at + 1).split(",").filter(Boolean);
      renderMembers();
      logEntry("info", `You joined ${state.room}.`);
      rooms.now();
      break;
    }
    case "3": {
      const { sender, text, direct } = readMessage(
        rest,
        state.features.includes("from"),
        stampSender,
      );
      if (direct) logEntry("msg direct", ["who", sender], ["dm", "direct"], text);
      else if (sender !== null) logEntry("msg", ["who", sender], text);
      else logEntry("msg", text);
      break;
    }
    case "4":
    case "5": {
      const at = rest.indexOf(":");
      const room = rest.slice(0, at);
      const user = rest.slice(at + 1);
      if (room === state.room) {
        state.members = code === "4"
          ? [...new Set([...state.members, user])].sort()
          : state.members.filter((m) => m !== user);
        renderMembers();
        rooms.soon(); // someone came from, or went to, another room: its line changed too
      }
      logEntry("presence", `${user} ${code === "4" ? "joined" : "left"} ${room}`);
      break;
    }
    case "6":
      savedSession.save(state.user, rest);
      break;
    case "7":
      state.lastReason = rest;
      if (rest === "shutdown") logEntry("info", "The server is restarting…");
      break;
    case "8":
      state.askedFeatures = false;
      state.features = rest.split(",").filter(Boolean);
      break;
    case "9": {
      const [failed, reason, detail] = rest.split(":");
      if (state.askedFeatures && failed === "?" && reason === "malformed") {
        state.askedFeatures = false; // a v1 server does not know `8:`: no features, no error
        break;
      }
      if (failed === "1" && rooms.quiet()) break; // a list we asked for by ourselves
      const said = REASONS[reason] ?? reason;
      logEntry("error", `Error (${failed}): ${said}${detail ? `: ${detail}` : ""}`);
      break;
    }
    default:
      break; // a client that does not know a code ignores the line
  }
}

/** A login (by password, token or after a loss) succeeded. */
function loggedIn() {
  const back = state.comingBack;
  state.loggingIn = false;
  state.loggedIn = true;
  state.user = state.pendingLogin;
  showChat(true);
  setStatus("connected", true);
  if (back) {
    logEntry("info", `Back (${state.resuming ? "resumed" : "logged in again"}).`);
    if (state.room) {
      send(state.roomPassword ? `2:${state.room}:${state.roomPassword}` : `2:${state.room}`);
    }
  } else {
    logEntry("info", `Logged in as ${state.user}.`);
  }
  state.resuming = false;
  state.comingBack = false;
  state.attempt = 0;
  rooms.now();
}

/** Stops for good with `message` on the login form (no reconnecting: never fight back). */
function stop(message, status = "logged out") {
  forgetSession();
  state.loggedIn = false;
  state.loggingIn = false;
  state.comingBack = false;
  state.room = "";
  state.members = [];
  renderMembers();
  showChat(false);
  $("login-error").textContent = message;
  $("login-button").disabled = false;
  setStatus(status, false);
}

/** After a lost connection: waits a random delay under a growing cap, then tries again. */
function comeBackLater() {
  state.attempt += 1;
  const delay = backoffDelay(state.attempt);
  if (state.attempt === 1) logEntry("info", "Connection lost; reconnecting…");
  setStatus(`reconnecting in ${(delay / 1000).toFixed(1)} s…`, "reconnecting");
  state.retry = setTimeout(async () => {
    try {
      await connect();
    } catch {
      return comeBackLater();
    }
    setStatus("reconnecting…", "reconnecting");
    const saved = savedSession.load();
    logInAgain(saved?.user === state.user ? saved.token : null);
  }, delay);
}

/** Logs in on a new connection: by `token` when there is one, else by the kept password. */
function logInAgain(token) {
  state.comingBack = true;
  state.loggingIn = true;
  state.pendingLogin = state.user;
  state.resuming = token !== null;
  if (token !== null) send(`6:${state.user}:${token}`);
  else if (state.password !== null) send(`0:${state.user}:${state.password}`);
  else stop("Please log in again.");
}

function connect() {
  return new Promise((resolve, reject) => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/`);
    socket.binaryType = "arraybuffer";
    socket.addEventListener("open", () => {
      state.socket = socket;
      state.features = [];
      state.askedFeatures = true;
      socket.send("8:from,why,resume");
      resolve(socket);
    });
    socket.addEventListener("message", (event) => {
      const text = typeof event.data === "string"
        ? event.data
        : new TextDecoder().decode(event.data);
      for (const line of text.split("\n")) if (line) receive(line);
    });
    socket.addEventListener("close", (event) => {
      if (state.socket !== socket) return reject(new Error("could not connect"));
      state.socket = null;
      const wasIn = state.loggedIn;
      if (
        (wasIn || state.comingBack) && !state.leaving && state.lastReason !== "replaced" &&
        state.lastReason !== "removed"
      ) {
        state.loggedIn = false;
        state.loggingIn = false;
        return comeBackLater(); // the chat stays on screen while the page comes back
      }
      state.loggedIn = false;
      state.loggingIn = false;
      state.room = "";
      state.members = [];
      renderMembers();
      setStatus("offline", false);
      showChat(false);
      state.leaving = false;
      $("login-button").disabled = false;
      if ((wasIn || event.code !== 1000) && !$("login-error").textContent) {
        $("login-error").textContent = "Disconnected from the server.";
      }
    });
  });
}

async function logIn(event) {
  event.preventDefault();
  const username = $("username").value.trim();
  const password = $("password").value;
  $("login-error").textContent = "";
  if (/[:\r\n]/.test(password)) {
    $("login-error").textContent = "A password cannot hold ':' or a line break.";
    return;
  }
  $("login-button").disabled = true;
  try {
    if (!state.socket) {
      setStatus("connecting", false);
      await connect();
    }
  } catch {
    setStatus("offline", false);
    $("login-error").textContent = "Could not reach the server.";
    $("login-button").disabled = false;
    return;
  }
  state.pendingLogin = username;
  state.loggingIn = true;
  state.comingBack = false;
  state.resuming = false;
  state.password = password;
  send(`0:${username}:${password}`);
}

function join(event) {
  event.preventDefault();
  const room = $("join-room").value.trim();
  const password = $("join-password").value;
  if (password.includes(":")) {
    logEntry("error", "A room password cannot hold ':'.");
    return;
  }
  state.joining = { room, password }; // its password is kept for a rejoin once `2:` says yes
  send(password ? `2:${room}:${password}` : `2:${room}`);
  $("join-password").value = "";
}

function say(event) {
  event.preventDefault();
  const text = $("say-text").value.replace(/[\r\n]+/g, " ");
  if ($("say-mode").value === "direct") {
    const targets = $("say-targets").value.split(/[\s,]+/).filter(Boolean);
    if (targets.length === 0) {
      logEntry("error", "Name who the direct message is for.");
      return;
    }
    if (text.includes(":")) {
      // The server takes the text after the LAST ':' of a 3:2 line as the message.
      logEntry("error", "A direct message cannot hold ':'.");
      return;
    }
    send(`3:2:${targets.join(":")}:${text}`);
    logEntry("mine", ["dm", `to ${targets.join(", ")}`], text);
  } else {
    if (!state.room) {
      logEntry("error", "Join a room first.");
      return;
    }
    send(`3:1:${text}`);
    logEntry("mine", ["who", "you"], text);
  }
  $("say-text").value = "";
}

function logOut() {
  clearTimeout(state.retry); // logging out while reconnecting: no more tries
  forgetSession();
  if (state.socket) {
    state.leaving = true;
    state.socket.close(1000);
  } else {
    stop("");
  }
}

$("login-form").addEventListener("submit", logIn);
$("join-form").addEventListener("submit", join);
$("say-form").addEventListener("submit", say);
$("say-mode").addEventListener("change", updateMode);
$("refresh").addEventListener("click", () => rooms.now(true));
$("logout").addEventListener("click", logOut);
updateMode();
renderMembers();
// A reload in the same tab resumes the session its token belongs to.
const saved = savedSession.load();
if (saved !== null) {
  state.user = saved.user;
  setStatus("reconnecting…", "reconnecting");
  connect().then(() => logInAgain(saved.token), () => comeBackLater());
}
