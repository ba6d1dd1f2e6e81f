// wslab fleet dashboard: the browser side of /ws (wslab/servers/dashboard.py).
//
// A snapshot on connect, then one message per change, each with its sequence number. When
// the connection drops, the page waits (exponential backoff, full jitter) and reconnects
// with ?since=<the last seq it applied>: the server replays what it missed, or sends a new
// snapshot if that is no longer kept. Everything from the server is shown with
// textContent, never as HTML: a service name is data.
"use strict";

(() => {
  const BACKOFF_FIRST = 0.1; // seconds: the first reconnection ceiling
  const BACKOFF_CAP = 5; // seconds: the largest ceiling
  const RECENT = 12; // recent changes listed under the tiles
  const STATUS_CLASSES = { healthy: "healthy", deploying: "deploying", failed: "failed", "rolled back": "rolled-back" };

  const $ = (id) => document.getElementById(id);
  const tiles = new Map(); // service name -> its tile element
  // seen: the seq of each change applied; lateness: seconds from its publication to now.
  const state = { seq: 0, seen: [], lateness: [], socket: null, attempt: 0 };
  window.fleetDashboard = state; // for the browser tests: which changes were applied

  function feedUrl() {
    const url = new URL(location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.pathname = url.pathname.replace(/[^/]*$/, "") + "ws"; // beside the page, any prefix
    url.search = state.seq > 0 ? `?since=${state.seq}` : "";
    url.hash = "";
    return url.href;
  }

  function setStatus(kind, text) {
    $("status").dataset.state = kind;
    $("status").textContent = text;
  }

  function tileFor(service) {
    let tile = tiles.get(service);
    if (!tile) {
      tile = document.createElement("section");
      const name = document.createElement("div");
      name.className = "name";
      name.textContent = service;
      const detail = document.createElement("div");
      detail.className = "detail";
      tile.append(name, detail);
      tiles.set(service, tile);
      $("tiles").append(tile);
    }
    return tile;
  }

  function show(change, fresh) {
    const tile = tileFor(String(change.service));
    tile.className = `tile ${STATUS_CLASSES[change.status] || "unknown"}${fresh ? " fresh" : ""}`;
    tile.querySelector(".detail").textContent = `v${Number(change.version)} · ${String(change.status)}`;
  }

  function applyChange(change) {
    if (change.seq <= state.seq) return; // already shown (a replay overlapping what we had)
    show(change, true);
    state.seq = change.seq;
    state.seen.push(change.seq);
    state.lateness.push(Date.now() / 1000 - change.at);
    const item = document.createElement("li");
    const when = new Date(change.at * 1000).toLocaleTimeString();
    item.textContent = `#${change.seq} ${when} ${change.service} v${change.version} ${change.status}`;
    $("recent").prepend(item);
    while ($("recent").children.length > RECENT) $("recent").lastChild.remove();
  }

  function applySnapshot(snapshot) {
    for (const change of snapshot.services) show(change, false);
    state.seq = snapshot.seq;
  }

  function render() {
    $("seq").textContent = `seq ${state.seq}`;
    $("seen").textContent = `${state.seen.length} changes seen`;
  }

  function connect() {
    setStatus(state.attempt ? "reconnecting" : "connecting", state.attempt ? "reconnecting" : "connecting");
    const socket = new WebSocket(feedUrl());
    state.socket = socket;
    socket.onopen = () => {
      state.attempt = 0;
      setStatus("live", state.seq ? `live (resumed after seq ${state.seq})` : "live");
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "snapshot") applySnapshot(message);
      else if (message.type === "change") applyChange(message);
      render();
    };
    socket.onclose = () => {
      state.socket = null;
      const ceiling = Math.min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** state.attempt);
      const delay = Math.random() * ceiling; // full jitter: tabs do not all come back at once
      state.attempt += 1;
      setStatus("reconnecting", `disconnected; reconnecting in ${delay.toFixed(1)} s`);
      setTimeout(connect, delay * 1000);
    };
  }

  connect();
})();
