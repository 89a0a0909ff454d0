// Parley's web page: one WebSocket to the server that served the page, speaking the line protocol
// of docs/protocol.md (one line per frame). No framework and no build step; the server embeds this
// file as it is.

const $ = (id) => document.getElementById(id);
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
  pendingLogin: null,
};

function setStatus(text, online) {
  const status = $("status");
  status.textContent = text;
  status.dataset.state = online ? "online" : "offline";
}

function showChat(visible) {
  $("login-view").hidden = visible;
  $("chat-view").hidden = !visible;
  $("logout").hidden = !visible;
  $("whoami").textContent = visible ? state.user : "";
}

/** Adds a line to the log; `parts` are [className, text] pairs or plain strings. */
function logEntry(kind, ...parts) {
  const log = $("log");
  const item = document.createElement("li");
  item.className = kind;
  for (const part of parts) {
    if (typeof part === "string") {
      item.append(part);
    } else {
      const span = document.createElement("span");
      span.className = part[0];
      span.textContent = part[1];
      item.append(span);
    }
  }
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(item);
  while (log.children.length > 500) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function send(line) {
  if (state.socket?.readyState === WebSocket.OPEN) state.socket.send(line);
}

function renderMembers() {
  $("room-title").textContent = state.room ? `# ${state.room}` : "Not in a room";
  const list = $("members");
  list.replaceChildren();
  for (const member of state.members) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = member;
    button.title = `Send ${member} a direct message`;
    button.addEventListener("click", () => {
      $("say-mode").value = "direct";
      $("say-targets").value = member;
      updateMode();
      $("say-text").focus();
    });
    item.append(button);
    list.append(item);
  }
}

function renderRooms(rooms) {
  const list = $("rooms");
  list.replaceChildren();
  if (rooms.length === 0) {
    const item = document.createElement("li");
    item.className = "empty";
    item.textContent = "No rooms yet: create one below.";
    list.append(item);
  }
  for (const room of rooms) {
    const item = document.createElement("li");
    if (room.name === state.room) item.className = "current";
    const button = document.createElement("button");
    button.type = "button";
    const name = document.createElement("span");
    name.className = "room-name";
    name.textContent = room.name;
    const members = document.createElement("span");
    members.className = "room-members";
    members.textContent = room.members.length ? room.members.join(", ") : "empty";
    button.append(name, members);
    button.addEventListener("click", () => {
      $("join-room").value = room.name;
      $("join-password").focus();
    });
    item.append(button);
    list.append(item);
  }
}

/** Handles one line from the server. */
function receive(line) {
  const colon = line.indexOf(":");
  const code = colon === -1 ? line : line.slice(0, colon);
  const rest = colon === -1 ? "" : line.slice(colon + 1);
  switch (code) {
    case "0":
      if (rest !== "-1") {
        state.loggingIn = false;
        state.loggedIn = true;
        state.user = state.pendingLogin;
        showChat(true);
        setStatus("online", true);
        logEntry("info", `Logged in as ${state.user}.`);
        send("1");
      } else if (state.loggingIn) {
        state.loggingIn = false;
        $("login-error").textContent = "Wrong username or password.";
        $("login-button").disabled = false;
      } else if (state.loggedIn) {
        state.loggedIn = false;
        state.room = "";
        state.members = [];
        renderMembers();
        showChat(false);
        $("login-error").textContent =
          "You were logged out (the same user logged in somewhere else).";
        $("login-button").disabled = false;
      }
      break;
    case "1": {
      const rooms = rest === "" ? [] : rest.split(":").map((field) => {
        const [name, ...members] = field.split(",");
        return { name, members };
      });
      renderRooms(rooms);
      break;
    }
    case "2": {
      const at = rest.indexOf(":");
      state.room = rest.slice(0, at);
      state.members = rest.slice(at + 1).split(",").filter(Boolean);
      renderMembers();
      logEntry("info", `You joined ${state.room}.`);
      send("1");
      break;
    }
    case "3": {
      if (stampSender) {
        const at = rest.indexOf(":");
        logEntry("msg", ["who", rest.slice(0, at)], rest.slice(at + 1));
      } else {
        logEntry("msg", rest);
      }
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
      }
      logEntry("presence", `${user} ${code === "4" ? "joined" : "left"} ${room}`);
      break;
    }
    case "9": {
      const [failed, reason, detail] = rest.split(":");
      const said = REASONS[reason] ?? reason;
      logEntry("error", `Error (${failed}): ${said}${detail ? `: ${detail}` : ""}`);
      break;
    }
    default:
      break; // a client that does not know a code ignores the line
  }
}

function connect() {
  return new Promise((resolve, reject) => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/`);
    socket.binaryType = "arraybuffer";
    socket.addEventListener("open", () => {
      state.socket = socket;
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
      state.loggedIn = false;
      state.loggingIn = false;
      state.room = "";
      state.members = [];
      renderMembers();
      setStatus("offline", false);
      showChat(false);
      $("login-button").disabled = false;
      if (wasIn || event.code !== 1000) {
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
  send(password ? `2:${room}:${password}` : `2:${room}`);
  $("join-password").value = "";
}

function updateMode() {
  const direct = $("say-mode").value === "direct";
  $("say-targets").hidden = !direct;
  $("say-text").placeholder = direct ? "Direct message" : "Message";
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
  state.socket?.close(1000);
}

$("login-form").addEventListener("submit", logIn);
$("join-form").addEventListener("submit", join);
$("say-form").addEventListener("submit", say);
$("say-mode").addEventListener("change", updateMode);
$("refresh").addEventListener("click", () => send("1"));
$("logout").addEventListener("click", logOut);
updateMode();
renderMembers();
