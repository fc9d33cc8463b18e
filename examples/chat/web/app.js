// The chat example's page: accounts through /auth/*, rooms, history, presence, typing and live
// messages through the official Centrifugo SDK (installed by `npm ci` here, served by wirehub).
import { Centrifuge, UnauthorizedError } from "./node_modules/centrifuge/build/index.mjs";

// Where the gateway is. By default the page and /auth/* share the origin this page came from
// (wirehub serves it: [http] static_dir) and the WebSocket is on the same host, port 8000 (the
// default server.port). `?ws=` and `?api=` override them, e.g. for a page served elsewhere.
const params = new URLSearchParams(location.search);
const API = params.get("api") ?? "";
const WS = params.get("ws")
  ?? `${location.protocol === "https:" ? "wss" : "ws"}://${location.hostname}:8000/connection/websocket`;
const HISTORY_LIMIT = 100;
const TYPING_EVERY_MS = 2000; // send "typing" at most this often while keys are pressed
const TYPING_SHOWN_MS = 3000; // and show someone as typing this long after their last notice

const $ = (selector) => document.querySelector(selector);
let session = null; // {token, refresh_token, user, username} from /auth/login or /auth/register
let centrifuge = null;
let room = null; // {name, chat: Subscription, typing: Subscription}
const online = new Map(); // client id -> display name, for the current room
const typers = new Map(); // display name -> time until which they are shown typing
let typingSentAt = 0;

// ------------------------------------------------------------------ accounts

async function auth(path, body) {
  // Tokens travel in the body, never in cookies: no credentials mode needed across origins.
  const response = await fetch(`${API}/auth/${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    credentials: "omit",
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(answer.error?.message ?? `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return answer;
}

async function refreshToken() {
  // The SDK calls this when the connection token expires (and after a restart refused it).
  try {
    session = { ...session, ...(await auth("refresh", { refresh_token: session.refresh_token })) };
  } catch (error) {
    if (error.status === 401) throw new UnauthorizedError("session ended");
    throw error;
  }
  return session.token;
}

$("#account-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const action = event.submitter?.value === "register" ? "register" : "login";
  $("#account-error").textContent = "";
  try {
    session = await auth(action, { username: form.username.value, password: form.password.value });
  } catch (error) {
    $("#account-error").textContent = error.status ? error.message : "cannot reach the server";
    return;
  }
  form.password.value = "";
  $("#sign-in").hidden = true;
  $("#chat").hidden = false;
  connect();
});

// ------------------------------------------------------------------ connection and rooms

function connect() {
  centrifuge = new Centrifuge(WS, { token: session.token, getToken: refreshToken });
  for (const state of ["connecting", "connected", "disconnected"]) {
    centrifuge.on(state, () => {
      $("#connection").textContent = state;
      $("#connection").dataset.state = state;
    });
  }
  centrifuge.on("connected", () => loadRooms());
  // rooms:index gets one publication per room created: new rooms appear in every open page.
  const index = centrifuge.newSubscription("rooms:index");
  index.on("publication", (ctx) => addRoom(ctx.data.room));
  index.subscribe();
  centrifuge.connect();
}

async function loadRooms() {
  const { data } = await centrifuge.rpc("chat:rooms", {});
  data.rooms.forEach(addRoom);
  if (!room) enterRoom(data.rooms[0]);
}

function addRoom(name) {
  if (document.querySelector(`#rooms [data-room="${CSS.escape(name)}"]`)) return;
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = `# ${name}`;
  button.dataset.room = name;
  button.setAttribute("aria-current", String(room?.name === name));
  button.addEventListener("click", () => enterRoom(name));
  item.append(button);
  $("#rooms").append(item);
}

$("#room-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = event.target.room;
  try {
    const { data } = await centrifuge.rpc("chat:create", { room: input.value });
    input.value = "";
    addRoom(data.room);
    enterRoom(data.room);
  } catch (error) {
    $("#message-error").textContent = error.message;
  }
});

function enterRoom(name) {
  if (room?.name === name) return;
  if (room) {
    for (const sub of [room.chat, room.typing]) centrifuge.removeSubscription(sub);
  }
  $("#messages").replaceChildren();
  online.clear();
  typers.clear();
  renderPeople();
  $("#room-title").textContent = `# ${name}`;
  for (const button of document.querySelectorAll("#rooms button")) {
    button.setAttribute("aria-current", String(button.dataset.room === name));
  }
  room = { name, chat: subscribeChat(name), typing: subscribeTyping(name) };
}

// ------------------------------------------------------------------ messages and presence

function subscribeChat(name) {
  // joinLeave: ask for join and leave pushes (the namespace announces them: join_leave = true).
  const sub = centrifuge.newSubscription(`chat:${name}`, { joinLeave: true });
  sub.on("subscribed", async (ctx) => {
    // First entry, or a gap recovery could not fill: (re)load the recent history. After a
    // network drop or a gateway restart the SDK recovers instead: it resubscribes from the last
    // offset it saw and the missed messages arrive as publications, once each.
    // How the last (re)subscription went, for whoever looks (the tests do): loaded, recovered, reloaded.
    $("#room").dataset.subscribed = !ctx.wasRecovering ? "loaded" : ctx.recovered ? "recovered" : "reloaded";
    if (!ctx.wasRecovering || !ctx.recovered) {
      const history = await sub.history({ limit: HISTORY_LIMIT, reverse: true });
      for (const pub of history.publications.reverse()) show(pub.data, pub.offset);
    }
    const presence = await sub.presence();
    online.clear();
    for (const [client, info] of Object.entries(presence.clients)) online.set(client, displayName(info));
    renderPeople();
  });
  sub.on("publication", (ctx) => show(ctx.data, ctx.offset));
  sub.on("join", (ctx) => { online.set(ctx.info.client, displayName(ctx.info)); renderPeople(); });
  sub.on("leave", (ctx) => { online.delete(ctx.info.client); renderPeople(); });
  sub.on("error", (ctx) => { $("#message-error").textContent = ctx.error.message; });
  sub.subscribe();
  return sub;
}

function displayName(info) {
  return info.connInfo?.username ?? info.user;
}

function show(data, offset) {
  if (data.type === "edit" || data.type === "delete") {
    const item = document.getElementById(`m-${data.id}`);
    if (item && data.type === "edit") item.querySelector(".text").textContent = data.text;
    if (item && data.type === "delete") item.remove();
    return;
  }
  if (data.type !== "message" || document.getElementById(`m-${data.id}`)) return; // once each
  const item = document.createElement("li");
  item.id = `m-${data.id}`;
  item.dataset.offset = String(offset ?? 0);
  const author = Object.assign(document.createElement("span"), { className: "author", textContent: data.name ?? data.user });
  const text = Object.assign(document.createElement("span"), { className: "text", textContent: data.text });
  const at = new Date(data.at);
  const time = Object.assign(document.createElement("time"), { dateTime: at.toISOString(), textContent: at.toLocaleTimeString() });
  item.append(author, text, time);
  // Keep the stream's order even when history and live messages meet out of order.
  const later = [...$("#messages").children].find((other) => Number(other.dataset.offset) > Number(item.dataset.offset));
  $("#messages").insertBefore(item, later ?? null);
  item.scrollIntoView({ block: "nearest" });
}

$("#message-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = event.target.text;
  $("#message-error").textContent = "";
  try {
    await room.chat.publish({ text: input.value });
    input.value = "";
  } catch (error) {
    $("#message-error").textContent = error.message; // the handler's reason (too long, not allowed)
  }
});

// ------------------------------------------------------------------ typing and who is online

function subscribeTyping(name) {
  const sub = centrifuge.newSubscription(`typing:${name}`);
  sub.on("publication", (ctx) => {
    if (ctx.data.user === session.user) return;
    typers.set(ctx.data.name, Date.now() + TYPING_SHOWN_MS);
    renderPeople();
    setTimeout(renderPeople, TYPING_SHOWN_MS + 50);
  });
  sub.subscribe();
  return sub;
}

$("#message").addEventListener("input", () => {
  if (!room || Date.now() - typingSentAt < TYPING_EVERY_MS) return;
  typingSentAt = Date.now();
  room.typing.publish({ typing: true }).catch(() => {}); // a lost notice is harmless
});

function renderPeople() {
  const names = [...new Set(online.values())].sort();
  $("#online").replaceChildren(...names.map((name) => Object.assign(document.createElement("li"), { textContent: name })));
  const now = Date.now();
  for (const [name, until] of typers) if (until <= now) typers.delete(name);
  const typing = [...typers.keys()].sort();
  $("#typing").textContent = typing.length === 0 ? ""
    : `${typing.join(", ")} ${typing.length === 1 ? "is" : "are"} typing…`;
}
