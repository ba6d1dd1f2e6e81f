// wslab chat: the browser client of the course's chat (json dialect of wslab/protocol.py).
//
// It behaves like wslab.clients.ChatClient: every room event carries a sequence number;
// the page ignores duplicates, reports gaps, reconnects with exponential backoff and full
// jitter, resumes from the last sequence number it saw, and resends its unacknowledged
// messages once the server says replay is over ("live").
//
// Where WebSockets do not get through (a proxy that refuses the upgrade), the page carries the
// same protocol over plain HTTP instead (stream.js): a link has the same shape either way.
// A full room, a wrong join code and too many wrong codes each get their own message; a full
// room is retried slowly, by itself.
//
// Everything a person typed is rendered with textContent, never as HTML.
"use strict";

(() => {
  const MAX_LINES = 500; // rendered lines (messages and notices) kept in the list
  const BACKOFF_FIRST = 0.1; // seconds: the first reconnection ceiling
  const BACKOFF_CAP = 10; // seconds: the largest ceiling
  const OPEN_TIMEOUT_MS = 10000; // a handshake that has not finished by then is abandoned
  const TOKEN_TIMEOUT_MS = 10000;
  const PLACE_CAP = 60; // seconds: the longest wait between two tries at a full room
  const FAILED_OPENS = 2; // WebSockets that never opened, in a row, before trying plain HTTP
  const MAX_TEXT_LENGTH = 4000; // protocol.MAX_TEXT_LENGTH
  const POLICY_VIOLATION = 1008;
  const REPLACED = 4002; // protocol.AppCloseCode.REPLACED: a newer connection of ours took over
  const KICKED = 4003; // close_codes.AppCloseCode.KICKED: the instructor removed us; do not come back
  // Client-side pacing of chat messages, under the server's per-connection rate limit
  // (ChatServer(rate=...), which closes with 1008): a reconnect that resends a full outbox
  // must not trip it. welcome.rate = [per_second, burst], if the server sends it, overrides.
  const SEND_RATE = 4;
  const SEND_BURST = 8;
  const CLOSE_NAMES = {
    1000: "normal closure",
    1001: "going away",
    1006: "connection lost",
    1008: "policy violation",
    1009: "message too big",
    1011: "server error",
    1012: "server restarting",
    1013: "try again later",
    4001: "too slow",
    4002: "reconnect",
    4003: "removed by the instructor",
  };
  // An instructor's decisions, as wslab.core.room_event.moderation_line reads them.
  const MODERATION = {
    kick: (who) => `${who} was removed by the instructor`,
    mute: (who) => `${who} was muted by the instructor`,
    unmute: (who) => `${who} was unmuted by the instructor`,
    clear: () => "the instructor cleared the chat",
  };

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"),
    joinView: $("join-view"),
    joinForm: $("join-form"),
    name: $("name"),
    codeField: $("code-field"),
    code: $("code"),
    joinError: $("join-error"),
    joinButton: $("join"),
    chatView: $("chat-view"),
    messages: $("messages"),
    outbox: $("outbox"),
    usersPanel: $("users-panel"),
    users: $("users"),
    userCount: $("user-count"),
    sendForm: $("send-form"),
    message: $("message"),
    sendButton: $("send"),
    leaveButton: $("leave"),
  };

  // State, named as in ChatClient.
  let state = "closed"; // connecting | live | reconnecting | closed
  let name = ""; // the name we ask for (the server's cleaned-up one after welcome)
  let code = "";
  let ws = null; // the current link (a WebSocket's, or stream.js's), or null between connections
  let transport = "websocket"; // "http" once WebSockets proved not to get through
  let failedOpens = 0; // WebSockets that closed before they opened, in a row
  let placeTries = 0; // tries at a full room since the last success
  let placeTimer = null;
  let live = false;
  let everLive = false; // been live once: a later "name taken" is probably our own ghost
  let stopping = false; // the person left: a 1000 we asked for
  let lastSeq = null; // highest seq seen; null before the first welcome
  let lastPrint = null; // the fingerprint of the event under lastSeq, when it is known
  const missing = []; // [first, last] ranges that never arrived
  const notices = [];
  let users = []; // a big room's list is partial: names come on request ("who")
  let roomCount = 0; // how many are in: from the welcome, coalesced joins/leaves, "users" replies
  const unacked = new Map(); // ref -> text, in sending order
  let refCounter = 0;
  let ceiling = BACKOFF_FIRST;
  let reconnectTimer = null;
  let openTimer = null;
  let lastError = null; // the last {code, text} error of the current connection
  let lastHeard = 0; // performance.now() of the last message from the server
  let watchdog = null; // interval timer of the heartbeat watchdog, if the server has one
  let sendRate = SEND_RATE;
  let sendBurst = SEND_BURST;
  let sendTokens = SEND_BURST;
  let sendRefilled = 0;
  let sendQueue = []; // refs waiting for the pacing, in order
  let drainTimer = null;

  // ---- rendering (text only) ----

  function scrolledToBottom() {
    const el = ui.messages;
    return el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  }

  function appendLine(li) {
    const stick = scrolledToBottom();
    ui.messages.appendChild(li);
    while (ui.messages.childElementCount > MAX_LINES) {
      ui.messages.firstElementChild.remove();
    }
    if (stick) ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function span(className, text) {
    const el = document.createElement("span");
    el.className = className;
    el.textContent = text;
    return el;
  }

  // "alice, bob, carol and 37 others joined the chat (1,204 here)", as wslab.protocol.presence_line.
  function presenceLine(kind, names, count, total) {
    const verb = kind === "join" ? "joined" : "left";
    const others = Math.max(0, count - names.length);
    let who;
    if (others) who = `${names.join(", ")} and ${others.toLocaleString("en-US")} other${others > 1 ? "s" : ""}`;
    else if (names.length > 1) who = `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
    else who = names[0] || "";
    return `${who} ${verb} the chat (${total.toLocaleString("en-US")} here)`;
  }

  function renderEvent(kind, seq, who, text, via, own, presence = null) {
    const li = document.createElement("li");
    li.className = `msg ${kind}${own ? " own" : ""}`;
    li.dataset.seq = String(seq);
    const body = span("text", "");
    if (kind === "chat") {
      body.append(span("who", `[${who}]`), document.createTextNode(` ${text}`));
    } else if (presence) {
      body.textContent = `>>> ${presenceLine(kind, presence.names, presence.count, presence.total)}`;
    } else if (MODERATION[kind]) {
      body.textContent = `>>> ${MODERATION[kind](who)}`;
    } else {
      const verb = kind === "join" ? "joined" : "left";
      body.textContent = `>>> ${who} ${verb} the chat`;
    }
    li.appendChild(body);
    if (via) {
      li.append(document.createTextNode(" "), span("via", `via ${via}`));
    }
    appendLine(li);
  }

  function notice(text, kind = "") {
    notices.push(text);
    if (notices.length > MAX_LINES) notices.splice(0, notices.length - MAX_LINES);
    const previous = ui.messages.lastElementChild;
    if (previous && previous.classList.contains("notice") && previous.dataset.text === text) {
      // The same notice again (a server down for a while): count instead of repeating.
      const count = Number(previous.dataset.count || "1") + 1;
      previous.dataset.count = String(count);
      previous.textContent = `${text} (×${count})`;
      return;
    }
    const li = document.createElement("li");
    li.dataset.text = text;
    li.className = kind ? `notice ${kind}` : "notice";
    li.textContent = text;
    appendLine(li);
  }

  // quiet: a "closed" that is no failure (not joined yet, or the person left).
  function setStatus(newState, text, quiet = false) {
    state = newState;
    ui.status.dataset.state = newState;
    ui.status.classList.toggle("quiet", quiet);
    ui.status.textContent = text;
  }

  function renderUsers() {
    const items = users.map((user) => {
      const li = document.createElement("li");
      li.textContent = user;
      if (user === name) li.className = "me";
      return li;
    });
    ui.users.replaceChildren(...items);
    ui.userCount.textContent = String(Math.max(roomCount, users.length));
  }

  function renderOutbox() {
    const items = [...unacked.values()].map((text) => {
      const li = document.createElement("li");
      li.className = "pending";
      li.append(span("who", `[${name}]`), document.createTextNode(` ${text}`), span("via", " sending…"));
      return li;
    });
    ui.outbox.replaceChildren(...items);
  }

  function showJoin(errorText) {
    ui.chatView.hidden = true;
    ui.joinView.hidden = false;
    ui.joinButton.disabled = false;
    if (name) ui.name.value = name;
    showJoinError(errorText);
    ui.name.focus();
  }

  function showJoinError(text) {
    ui.joinError.textContent = text || "";
    ui.joinError.hidden = !text;
  }

  function showChat() {
    ui.joinView.hidden = true;
    ui.chatView.hidden = false;
    ui.message.focus();
  }

  // ---- tokens ----

  class TokenError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body || {};
    }
    // 400/401/403: the person must change something; anything else may pass by itself.
    get final() {
      return [400, 401, 403].includes(this.status);
    }
  }

  function roomFull(err) {
    return err instanceof TokenError && err.status === 503 && err.body.room_full === true;
  }

  function codeRequired(err) {
    if (!(err instanceof TokenError) || ![400, 401, 403].includes(err.status)) return false;
    const body = err.body;
    if (body.code_required === true || body.need === "code" || body.field === "code") return true;
    return /\bcode\b/i.test(String(body.error || ""));
  }

  async function fetchToken() {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TOKEN_TIMEOUT_MS);
    let response;
    try {
      response = await fetch("api/token", { // relative: the page may live under a prefix
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ name, code }),
        credentials: "same-origin",
        cache: "no-store",
        signal: controller.signal,
      });
    } catch (err) {
      throw new TokenError(0, `cannot reach the server (${err.name === "AbortError" ? "timeout" : err.message})`);
    } finally {
      clearTimeout(timer);
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (response.ok && body && typeof body.token === "string") return body.token;
    const message =
      body && typeof body.error === "string" ? body.error : `the server answered ${response.status} ${response.statusText}`;
    const err = new TokenError(response.status, message, body);
    const retryAfter = Number(response.headers.get("Retry-After"));
    if (retryAfter > 0) err.retryAfter = retryAfter;
    throw err;
  }

  // ---- joining ----

  async function onJoin(event) {
    event.preventDefault();
    const typed = ui.name.value.trim();
    if (!typed) {
      showJoinError("Please enter a name.");
      ui.name.focus();
      return;
    }
    name = typed;
    code = ui.code.value.trim();
    placeTries = 0;
    await tryToJoin();
  }

  // A full room is tried again by itself, more slowly each time (the server's Retry-After
  // first, doubling up to PLACE_CAP, with jitter so that a queue of phones does not come back
  // at the same instant); pressing Join again tries at once.
  function waitForPlace(err) {
    const first = err.retryAfter || 5;
    const ceiling = Math.min(PLACE_CAP, first * 2 ** placeTries);
    const delay = Math.max(first, ceiling * (0.5 + Math.random() / 2));
    placeTries += 1;
    setStatus("closed", `the room is full; trying again in ${Math.round(delay)} s`, true);
    clearTimeout(placeTimer);
    placeTimer = setTimeout(tryToJoin, delay * 1000);
  }

  async function tryToJoin() {
    clearTimeout(placeTimer);
    placeTimer = null;
    ui.joinButton.disabled = true;
    showJoinError("");
    let token;
    try {
      token = await fetchToken();
    } catch (err) {
      ui.joinButton.disabled = false;
      showJoinError(err.message);
      if (roomFull(err)) {
        waitForPlace(err);
      } else if (codeRequired(err)) {
        ui.codeField.hidden = false;
        ui.code.focus();
      } else {
        ui.name.focus();
      }
      return;
    }
    placeTries = 0;
    try {
      localStorage.setItem("wslab-name", name);
    } catch {
      /* storage may be disabled */
    }
    stopping = false;
    everLive = false;
    ceiling = BACKOFF_FIRST;
    showChat();
    setStatus("connecting", "connecting…");
    connect(token);
  }

  // ---- the connection ----

  // "ws" next to the page, so it works at / and under a proxy's prefix (/user/NAME/proxy/PORT/).
  function wsUrl() {
    const url = new URL("ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }

  function helloFor(token) {
    const hello = { type: "hello", name, token };
    if (lastSeq !== null) hello.resume = lastSeq;
    if (lastSeq !== null && lastPrint !== null) hello.last = lastPrint; // lets the server spot a lost numbering
    return hello;
  }

  function received(link, text) {
    if (ws !== link) return;
    lastHeard = performance.now();
    if (typeof text !== "string") {
      notice("ignored a binary message from the server", "error");
      return;
    }
    let data;
    try {
      data = JSON.parse(text);
    } catch {
      notice(`ignored a message that is not JSON: ${text.slice(0, 80)}`, "error");
      return;
    }
    if (data && typeof data === "object") handle(link, data);
  }

  function connect(token) {
    lastError = null;
    clearTimeout(openTimer);
    if (transport === "websocket") {
      try {
        ws = openWebSocket(token);
        return;
      } catch (err) {
        fallBack(`WebSockets are refused here (${err.message})`);
      }
    }
    ws = openHttp(token);
  }

  // The link over a WebSocket: the hello goes first once it is open.
  function openWebSocket(token) {
    const socket = new WebSocket(wsUrl());
    let opened = false;
    const link = {
      kind: "websocket",
      isOpen: () => socket.readyState === WebSocket.OPEN,
      send(message) {
        if (socket.readyState !== WebSocket.OPEN) return false;
        socket.send(JSON.stringify(message));
        return true;
      },
      close: (closeCode, reason) => socket.close(closeCode, reason),
    };
    openTimer = setTimeout(() => {
      if (ws === link && socket.readyState === WebSocket.CONNECTING) socket.close();
    }, OPEN_TIMEOUT_MS);
    socket.addEventListener("open", () => {
      if (ws !== link) return;
      opened = true;
      failedOpens = 0;
      clearTimeout(openTimer);
      link.send(helloFor(token));
    });
    socket.addEventListener("message", (event) => received(link, event.data));
    // Browsers always follow "error" with "close", which carries the code: handle that.
    socket.addEventListener("close", (event) => {
      if (ws !== link) return;
      if (!opened && ++failedOpens >= FAILED_OPENS) {
        fallBack("WebSockets do not get through this network");
      }
      onClose(event.code, event.reason);
    });
    return link;
  }

  // The same protocol over plain HTTP (stream.js): the hello travels with the request.
  function openHttp(token) {
    const link = window.wslabStream.open(helloFor(token), {
      onOpen: () => {
        if (ws !== link) return;
        clearTimeout(openTimer);
        lastHeard = performance.now();
      },
      onMessage: (text) => received(link, text),
      onClose: (closeCode, reason) => {
        if (ws === link) onClose(closeCode, reason);
      },
    });
    openTimer = setTimeout(() => {
      if (ws === link && !link.isOpen()) link.close(1006, "no answer");
    }, OPEN_TIMEOUT_MS);
    return link;
  }

  function fallBack(why) {
    if (transport === "http") return;
    transport = "http";
    notice(`${why}: the chat goes over plain HTTP instead`, "warning");
  }

  function send(link, message) {
    return Boolean(link) && link.send(message);
  }

  function handle(link, data) {
    switch (data.type) {
      case "welcome": {
        if (typeof data.name === "string" && data.name) name = data.name;
        users = Array.isArray(data.users) ? data.users.map(String) : [];
        roomCount = Number.isFinite(Number(data.count)) && data.count !== undefined ? Number(data.count) : users.length;
        renderUsers();
        startWatchdog(link, data.heartbeat);
        if (Array.isArray(data.rate) && data.rate[0] > 0 && data.rate[1] >= 1) {
          sendRate = Number(data.rate[0]) * 0.8;
          sendBurst = Math.max(1, Math.floor(Number(data.rate[1]) * 0.8));
          sendTokens = Math.min(sendTokens, sendBurst);
        }
        const seq = Number(data.seq);
        if (!Number.isFinite(seq)) {
          notice("the server's welcome has no seq", "error");
        } else if (lastSeq === null) {
          lastSeq = seq;
          notice(`welcome, ${name} (server ${data.server || "?"}, seq ${seq})`);
        } else if (seq < lastSeq) {
          // The room's numbering went backwards: its broker lost the room. A reset follows.
          notice(`the room's numbering went back to seq ${seq}`, "warning");
        } else {
          notice(`reconnected as ${name} (server ${data.server || "?"}), catching up from seq ${lastSeq}`);
        }
        break;
      }
      case "chat":
      case "join":
      case "leave":
      case "kick":
      case "mute":
      case "unmute":
      case "clear": {
        // A big room's join or leave is coalesced: a few names, how many, and how many are in.
        const presence = Array.isArray(data.names)
          ? { names: data.names.map(String), count: Number(data.count) || 0, total: Number(data.total) || 0 }
          : null;
        record(data.type, Number(data.seq), String(data.name ?? ""), String(data.text ?? ""), String(data.via ?? ""), false, presence);
        break;
      }
      case "users": {
        users = Array.isArray(data.users) ? data.users.map(String) : [];
        roomCount = Number(data.count) || users.length;
        renderUsers();
        break;
      }
      case "ack": {
        const ref = String(data.ref ?? "");
        const known = unacked.has(ref);
        const text = known ? unacked.get(ref) : "";
        unacked.delete(ref);
        renderOutbox();
        if (Number(data.seq) === 0) {
          // Published before the broker lost the room: it may not have reached everyone.
          if (known) notice(`"${text}" was published before the room's reset`, "warning");
          break;
        }
        record("chat", Number(data.seq), name, known ? text : "(sent earlier)", String(data.via ?? ""), true);
        if (!known) lastPrint = null; // its text is not known here: nothing to check a resume with
        break;
      }
      case "live": {
        live = true;
        everLive = true;
        ceiling = BACKOFF_FIRST;
        setStatus("live", transport === "http" ? "live (over plain HTTP)" : "live");
        sendQueue = [...unacked.keys()]; // every still-unacknowledged message, in order
        drain();
        break;
      }
      case "history-lost": {
        const first = Number(data.first);
        const last = Number(data.last);
        notice(`history lost: seq ${first}..${last} can no longer be replayed`, "warning");
        missing.push([first, last]);
        lastSeq = last;
        lastPrint = null;
        break;
      }
      case "reset": {
        // The broker came back without the room's data: numbering starts again after seq. The
        // text says after which seq of the old numbering messages may be missing (lost_after).
        notice(`${String(data.text ?? "the room's history was reset")}`, "warning");
        lastSeq = Number(data.seq);
        lastPrint = null;
        break;
      }
      case "error": {
        lastError = { code: String(data.code ?? ""), text: String(data.text ?? "") };
        notice(`error: ${lastError.text || lastError.code}`, "error");
        // A per-message refusal that names the message: it will never be acknowledged.
        if (data.ref !== undefined && unacked.has(String(data.ref))) {
          unacked.delete(String(data.ref));
          renderOutbox();
        }
        break;
      }
      case "ping":
        // Application heartbeat (lesson 05): answer at once with the same t.
        send(link, { type: "pong", t: data.t });
        break;
      default:
        // Unknown types are ignored, so the server can grow the protocol.
        break;
    }
  }

  // What an event says, hashed as the server hashes it (wslab.core.room_event.fingerprint):
  // FNV-1a, 32 bits, over the UTF-8 of kind, name and text.
  function fingerprint(kind, who, text) {
    let hash = 0x811c9dc5;
    for (const byte of new TextEncoder().encode(`${kind}\n${who}\n${text}`)) {
      hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
    }
    return hash.toString(16).padStart(8, "0");
  }

  // Sequence tracking, as SequenceTracker + ChatClient._record.
  function record(kind, seq, who, text, via, own, presence = null) {
    if (!Number.isFinite(seq)) return;
    if (lastSeq !== null) {
      if (seq <= lastSeq) return; // duplicate: already shown
      if (seq > lastSeq + 1) {
        missing.push([lastSeq + 1, seq - 1]);
        notice(`missed seq ${lastSeq + 1}..${seq - 1}`, "warning");
      }
    }
    lastSeq = seq;
    lastPrint = fingerprint(kind, who, text);
    if (kind === "clear") {
      // The instructor cleared every screen: this one too (the outbox stays: not sent yet).
      ui.messages.replaceChildren();
      notices.length = 0;
    }
    if (kind === "join" || kind === "leave") {
      for (const person of presence ? presence.names : [who]) {
        if (kind === "join" && !users.includes(person)) {
          users.push(person);
          if (!presence) roomCount += 1;
        } else if (kind === "leave" && users.includes(person)) {
          users = users.filter((user) => user !== person);
          if (!presence) roomCount -= 1;
        }
      }
      if (presence) roomCount = presence.total;
      renderUsers();
    }
    renderEvent(kind, seq, who, text, via, own, presence);
  }

  // ---- pacing (a token bucket, as wslab.limits.TokenBucket) ----

  function drain() {
    drainTimer = null;
    if (!live || !ws) return;
    const now = performance.now();
    sendTokens = Math.min(sendBurst, sendTokens + ((now - sendRefilled) / 1000) * sendRate);
    sendRefilled = now;
    while (sendQueue.length && sendTokens >= 1) {
      const ref = sendQueue.shift();
      if (!unacked.has(ref)) continue; // acknowledged meanwhile (during replay)
      if (!send(ws, { type: "chat", text: unacked.get(ref), ref })) return;
      sendTokens -= 1;
    }
    if (sendQueue.length) {
      drainTimer = setTimeout(drain, Math.ceil(((1 - sendTokens) / sendRate) * 1000) + 5);
    }
  }

  function stopDrain() {
    clearTimeout(drainTimer);
    drainTimer = null;
    sendQueue = []; // still in unacked: resent after the next "live"
  }

  // ---- heartbeat watchdog (the client's half of lesson 05's heartbeat) ----

  // welcome.heartbeat = {interval, timeout} in seconds: the server pings every interval, so
  // a server silent for longer than timeout is gone (or the network in between is).
  function startWatchdog(link, heartbeat) {
    stopWatchdog();
    const interval = Number(heartbeat && heartbeat.interval);
    const timeout = Number(heartbeat && heartbeat.timeout);
    if (!(interval > 0 && timeout > 0)) return;
    watchdog = setInterval(() => {
      if (ws !== link) return stopWatchdog();
      const silence = (performance.now() - lastHeard) / 1000;
      if (silence > timeout) {
        notice(`server silent for ${silence.toFixed(1)} s: reconnecting`, "warning");
        // A browser cannot abort a socket; close() may wait on a dead network for minutes.
        // So forget this one (its events are ignored from now on) and reconnect at once.
        ws = null;
        link.close(4000, "heartbeat timeout");
        onClose(1006, "server silent");
      }
    }, interval * 1000);
  }

  function stopWatchdog() {
    clearInterval(watchdog);
    watchdog = null;
  }

  function describeClose(closeCode, reason) {
    const label = reason || CLOSE_NAMES[closeCode] || "";
    return label ? `${closeCode} ${label}` : String(closeCode);
  }

  function onClose(closeCode, reason) {
    clearTimeout(openTimer);
    stopWatchdog();
    stopDrain();
    ws = null;
    live = false;
    const described = describeClose(closeCode, reason);
    if (stopping) {
      setStatus("closed", "disconnected: you left", true);
      notice("you left the chat");
      return;
    }
    const errorCode = lastError !== null ? lastError.code : "";
    const nameTaken = errorCode === "name-taken";
    // As ChatClient: a refused name or token is final; a full room ("room-full", 1013) passes.
    const kicked = closeCode === KICKED || errorCode === "kicked"; // behind a proxy, only the error says so
    const rejected =
      kicked ||
      closeCode === POLICY_VIOLATION ||
      closeCode === REPLACED || // another tab or device of ours resumed: reconnecting would evict it in turn
      errorCode.startsWith("name-") ||
      errorCode.endsWith("token") ||
      errorCode === "token-required";
    if (rejected && !(nameTaken && everLive)) {
      const told = lastError && lastError.text; // a kick's error says why, in full
      const why = (kicked && told) || reason || told || CLOSE_NAMES[closeCode] || `code ${closeCode}`;
      notice(`connection closed (${described})`, "error");
      setStatus("closed", `disconnected: ${why}`);
      showJoin(why);
      return;
    }
    notice(`connection closed (${described}), reconnecting`, "warning");
    scheduleReconnect();
  }

  function scheduleReconnect(minimum = 0) {
    const delay = Math.max(Math.random() * ceiling, minimum);
    ceiling = Math.min(BACKOFF_CAP, ceiling * 2);
    setStatus("reconnecting", `reconnecting in ${delay.toFixed(1)} s…`);
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(reconnect, delay * 1000);
  }

  async function reconnect() {
    reconnectTimer = null;
    if (stopping) return;
    setStatus("reconnecting", "reconnecting…");
    let token;
    try {
      token = await fetchToken(); // tokens are short-lived: always get a fresh one
    } catch (err) {
      if (stopping) return;
      if (err instanceof TokenError && err.final) {
        notice(`cannot rejoin: ${err.message}`, "error");
        setStatus("closed", `disconnected: ${err.message}`);
        if (codeRequired(err)) ui.codeField.hidden = false;
        showJoin(err.message);
        return;
      }
      if (roomFull(err) && !everLive) {
        // Never got in: back to the form, which says so and keeps trying, slowly.
        showJoin(err.message);
        waitForPlace(err);
        return;
      }
      notice(`cannot get a token: ${err.message}`, "warning");
      scheduleReconnect(err.retryAfter || 0);
      return;
    }
    if (stopping) return;
    connect(token);
  }

  // ---- sending and leaving ----

  function onSend(event) {
    event.preventDefault();
    const text = ui.message.value.trim(); // the server strips; blank messages get no ack
    if (!text) return;
    if (text.length > MAX_TEXT_LENGTH) {
      notice(`a message has at most ${MAX_TEXT_LENGTH} characters`, "error");
      return;
    }
    refCounter += 1;
    const ref = `${name}-${refCounter}`;
    unacked.set(ref, text);
    renderOutbox();
    if (live) {
      sendQueue.push(ref);
      drain();
    } // otherwise it waits in the outbox for "live"
    ui.message.value = "";
    ui.message.focus();
  }

  function onLeave() {
    stopping = true;
    stopWatchdog();
    stopDrain();
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    live = false;
    setStatus("closed", "disconnected: you left", true);
    clearTimeout(placeTimer);
    if (ws) {
      ws.close(1000, "bye"); // its close event adds the notice
    }
    showJoin("");
  }

  // Back online after the network dropped: no need to wait out the backoff.
  function onOnline() {
    if (reconnectTimer !== null && !stopping) {
      clearTimeout(reconnectTimer);
      reconnect();
    }
  }

  // ---- start ----

  function init() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (fragment.get("code")) {
      ui.code.value = fragment.get("code");
    }
    try {
      ui.name.value = localStorage.getItem("wslab-name") || "";
    } catch {
      /* storage may be disabled */
    }
    if (window.matchMedia && window.matchMedia("(max-width: 40rem)").matches) {
      ui.usersPanel.open = false;
    }
    // A big room sends counts, not names: opening the list asks who is in.
    ui.usersPanel.addEventListener("toggle", () => {
      if (ui.usersPanel.open && live && roomCount > users.length) send(ws, { type: "who" });
    });
    ui.joinForm.addEventListener("submit", onJoin);
    ui.sendForm.addEventListener("submit", onSend);
    ui.leaveButton.addEventListener("click", onLeave);
    window.addEventListener("online", onOnline);
    window.addEventListener("hashchange", () => {
      const value = new URLSearchParams(location.hash.slice(1)).get("code");
      if (value) ui.code.value = value;
    });
    ui.name.focus();
  }

  // A tiny hook for browser tests.
  window.wslabChat = Object.freeze({
    state: () => state,
    lastSeq: () => lastSeq,
    lines: () => [...ui.messages.querySelectorAll("li.msg > .text")].map((el) => el.textContent),
    notices: () => [...notices],
    missing: () => missing.map((range) => [...range]),
    users: () => [...users],
    count: () => roomCount,
    unacked: () => [...unacked.values()],
    transport: () => transport,
    joinError: () => (ui.joinError.hidden ? "" : ui.joinError.textContent),
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
