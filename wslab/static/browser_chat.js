// The in-notebook browser client (wslab.browser_client.BrowserChat), an anywidget front-end module.
// The browser showing the notebook, not the kernel, opens this WebSocket: same protocol as the
// chat page (token over HTTP, json hello with name and resume, messages rendered as text).
// One connection per widget model (initialize), shown by every view of it (render). anywidget
// hands each hook its own proxy of the model, so clients are found by a synced id, not by model.

const clients = new Map(); // the model's client_id -> its client
// An instructor's decisions, as wslab.core.room_event.moderation_line reads them.
const MODERATION = {
  kick: (who) => `${who} was removed by the instructor`,
  mute: (who) => `${who} was muted by the instructor`,
  unmute: (who) => `${who} was unmuted by the instructor`,
  clear: () => "the instructor cleared the chat",
};
const STOP_CODES = [1008, 4002, 4003]; // refused, replaced, removed by the instructor: do not come back

function createClient(model) {
  const base = new URL(model.get("url"), location.href); // a path resolves against this page
  const wsUrl = new URL("ws", base);
  wsUrl.protocol = base.protocol === "https:" ? "wss:" : "ws:";
  const name = model.get("name");
  const client = {
    wsUrl: wsUrl.href, state: "connecting", lines: [], users: [], outbox: [], views: new Set(),
    lastSeq: null, ws: null, stopped: false, attempt: 0, sent: 0, timer: null,
  };
  const changed = () => {
    // A custom message, not a synced trait: ipywidgets throttles front-end trait updates to one
    // in flight, and here a reply's idle status did not always come back to release the next.
    model.send({ state: client.state, last_seq: client.lastSeq ?? -1 });
    for (const view of client.views) view();
  };
  const show = (seq, text) => {
    client.lines.push([seq, text]);
    if (client.lines.length > 200) client.lines.shift();
  };

  async function token() {
    const response = await fetch(new URL("api/token", base), {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name, code: model.get("code") }), cache: "no-store",
    });
    const body = await response.json();
    if (!response.ok) throw Object.assign(new Error(body.error || `HTTP ${response.status}`), { fatal: true });
    return body.token;
  }

  function onMessage(message) {
    const seq = typeof message.seq === "number" ? message.seq : null;
    if (message.type === "ping") return client.ws.send(JSON.stringify({ type: "pong", t: message.t }));
    if (message.type === "welcome") {
      client.users = message.users || [];
      if (client.lastSeq === null || seq < client.lastSeq) client.lastSeq = seq; // first, or history restarted
    } else if (["chat", "join", "leave", ...Object.keys(MODERATION)].includes(message.type)) {
      if (seq !== null && client.lastSeq !== null && seq <= client.lastSeq) return; // seen before the cut
      if (message.type === "join" && !client.users.includes(message.name)) client.users.push(message.name);
      if (message.type === "leave") client.users = client.users.filter((user) => user !== message.name);
      if (message.type === "clear") client.lines = []; // cleared on every screen, this one too
      const text = message.type === "chat" ? `[${message.name}] ${message.text}`
        : MODERATION[message.type] ? `>>> ${MODERATION[message.type](message.name)}`
        : `>>> ${message.name} ${message.type === "join" ? "joined" : "left"} the chat`;
      show(seq, text);
      client.lastSeq = seq;
    } else if (message.type === "ack") {
      const index = client.outbox.findIndex((item) => item.ref === message.ref);
      if (index >= 0 && (client.lastSeq === null || seq > client.lastSeq)) {
        show(seq, `[${name}] ${client.outbox[index].text}`);
        client.lastSeq = seq;
      }
      if (index >= 0) client.outbox.splice(index, 1);
    } else if (message.type === "live") {
      client.state = "live";
      client.attempt = 0;
      for (const item of client.outbox) client.ws.send(JSON.stringify({ type: "chat", text: item.text, ref: item.ref }));
    } else if (message.type === "reset") {
      show(null, `(${message.text})`); // the broker lost the room: numbering starts again after seq
      client.lastSeq = message.seq;
    } else if (message.type === "history-lost") {
      show(null, `(missed ${message.first}..${message.last}: ${message.text})`);
      client.lastSeq = message.last;
    } else if (message.type === "error") {
      show(null, `(error ${message.code}: ${message.text})`);
      if (message.code === "kicked") client.kicked = true; // behind a proxy the close code is lost
      if (message.ref) client.outbox = client.outbox.filter((item) => item.ref !== message.ref);
    }
    changed();
  }

  async function connect() {
    if (client.stopped) return;
    let credential;
    try {
      credential = await token();
    } catch (error) {
      show(null, `(no token: ${error.message})`);
      return error.fatal ? stop("closed") : retry();
    }
    const ws = new WebSocket(client.wsUrl);
    client.ws = ws;
    ws.onopen = () => {
      const hello = { type: "hello", name, token: credential };
      if (client.lastSeq !== null) hello.resume = client.lastSeq;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (event) => {
      try {
        onMessage(JSON.parse(event.data));
      } catch (error) {
        show(null, `(unreadable message: ${error.message})`);
        changed();
      }
    };
    ws.onclose = (event) => {
      if (client.ws !== ws) return;
      show(null, `(connection closed: ${event.code} ${event.reason})`);
      if (client.stopped || client.kicked || STOP_CODES.includes(event.code)) return stop("closed");
      retry();
    };
  }

  function retry() {
    client.state = "reconnecting";
    changed();
    const delay = Math.random() * Math.min(5000, 100 * 2 ** client.attempt++); // full jitter
    client.timer = setTimeout(connect, delay);
  }

  function stop(state) {
    client.stopped = true;
    client.state = state;
    clearTimeout(client.timer);
    if (client.ws && client.ws.readyState <= WebSocket.OPEN) client.ws.close(1000, "widget closed");
    changed();
  }

  client.send = (text) => {
    text = text.trim();
    if (!text) return;
    const item = { text, ref: `${name}-nb-${++client.sent}` };
    client.outbox.push(item);
    if (client.state === "live") client.ws.send(JSON.stringify({ type: "chat", text, ref: item.ref }));
    changed();
  };
  client.stop = () => stop("closed");
  connect();
  return client;
}

function initialize({ model }) {
  const id = model.get("client_id");
  const client = createClient(model);
  clients.set(id, client);
  return () => {
    client.stop();
    clients.delete(id);
  };
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text; // text from the network: never HTML
  return node;
}

// The lines after `last` (the same array), oldest first; all of them once `last` is gone (a clear).
function newer(lines, last) {
  const index = lines.lastIndexOf(last);
  return index < 0 ? lines : lines.slice(index + 1);
}

function render({ model, el }) {
  const client = clients.get(model.get("client_id"));
  el.classList.add("wslab-browser-chat");
  // Text at JupyterLab's widget size times wslab's projector scale (wslab.widgets.projector).
  const size = () => { el.style.fontSize = `calc(var(--jp-widgets-font-size, 13px) * ${Number(model.get("scale")) || 1})`; };
  size();
  model.on("change:scale", size);
  const header = element("div", "wslab-bc-header");
  const status = element("span", "wslab-bc-status");
  const where = element("div", "wslab-bc-where");
  const list = element("ol", "wslab-bc-lines");
  const form = element("form", "wslab-bc-form");
  const input = element("input", "wslab-bc-input");
  input.placeholder = "type, then Enter";
  input.setAttribute("aria-label", `message from ${model.get("name")}`);
  // The list is redrawn whole, which a screen reader never announces: new lines go here too.
  const region = element("div", "wslab-bc-live");
  region.setAttribute("role", "log");
  region.setAttribute("aria-live", "polite");
  region.setAttribute("aria-label", `${model.get("name")}'s chat, new lines`);
  let announced = client.lines[client.lines.length - 1]; // what is there already is not news
  form.append(input, element("button", "", "Send"));
  form.onsubmit = (event) => {
    event.preventDefault();
    client.send(input.value);
    input.value = "";
  };
  input.onkeydown = (event) => event.stopPropagation(); // keys go to the field, not to JupyterLab's shortcuts
  header.append(element("b", "", `${model.get("name")}, in this browser`), " · ", status);
  where.textContent = `${navigator.userAgent.split(") ").pop()} → ${client.wsUrl}`;
  el.append(header, where, list, form, region);

  const update = () => {
    status.textContent = `${client.state} · ${client.users.length} in the room`;
    status.dataset.state = client.state;
    const lines = [...client.lines, ...client.outbox.map((item) => [null, `sending… ${item.text}`])];
    list.replaceChildren(...lines.slice(-12).map(([seq, text]) => {
      const line = element("li", seq === null ? "notice" : "msg", text);
      if (seq !== null) line.dataset.seq = seq;
      return line;
    }));
    for (const [, text] of newer(client.lines, announced)) region.append(element("div", "", text));
    announced = client.lines[client.lines.length - 1];
    while (region.childElementCount > 20) region.firstElementChild.remove();
  };
  client.views.add(update);
  update();
  return () => {
    client.views.delete(update);
    model.off("change:scale", size);
  };
}

export default { initialize, render };
