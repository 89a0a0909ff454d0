// The web page's view (app.js drives it): the status, the two screens, the log, the member and
// room lists. Text from the network only ever goes in through textContent or append(string).

export const $ = (id) => document.getElementById(id);

/** The status badge: `online` true, false, or "reconnecting". */
export function setStatus(text, online) {
  const status = $("status");
  status.textContent = text;
  status.dataset.state = online === "reconnecting" ? online : online ? "online" : "offline";
}

/** Shows the chat (logged in as `user`) or the login form. */
export function showChat(visible, user) {
  $("login-view").hidden = visible;
  $("chat-view").hidden = !visible;
  $("logout").hidden = !visible;
  $("whoami").textContent = visible ? user : "";
}

export /** Adds a line to the log; `parts` are [className, text] pairs or plain strings. */
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

export function renderMembers(room, members) {
  $("room-title").textContent = room ? `# ${room}` : "Not in a room";
  const list = $("members");
  list.replaceChildren();
  for (const member of members) {
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

export function renderRooms(rooms, current) {
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
    if (room.name === current) item.className = "current";
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

/** Shows the targets field for direct messages. */
export function updateMode() {
  const direct = $("say-mode").value === "direct";
  $("say-targets").hidden = !direct;
  $("say-text").placeholder = direct ? "Direct message" : "Message";
}
