// wslab chat over plain HTTP: the page's fallback when a network refuses WebSockets
// (the server's half is wslab/servers/web/stream.py).
//
// The same protocol as on the WebSocket, over two kinds of request:
// - receiving: POST api/stream with the hello; the answer is Server-Sent Events (lesson 07),
//   read with fetch, because EventSource cannot send a token anywhere but in its URL;
// - sending: POST api/send, one request at a time, so that messages keep their order.
//
// open() returns a "link" with the WebSocket's shape as chat.js uses it: send(), close(),
// isOpen(), and onOpen / onMessage / onClose(code, reason) callbacks.
"use strict";

window.wslabStream = (() => {
  const ABNORMAL = 1006; // as a WebSocket reports a connection that died without a close frame
  const TRY_AGAIN_LATER = 1013;

  // One event of a text/event-stream block (WHATWG HTML §9.2): its type and its data lines.
  function parseBlock(block) {
    const event = { type: "message", data: [] };
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event.type = value;
      else if (field === "data") event.data.push(value);
    }
    return event.data.length ? { type: event.type, data: event.data.join("\n") } : null;
  }

  function open(hello, handlers) {
    const controller = new AbortController();
    let session = null;
    let closed = false;
    let posting = false;
    const queue = [];

    function finish(code, reason) {
      if (closed) return;
      closed = true;
      session = null;
      controller.abort();
      handlers.onClose(code, reason);
    }

    async function post(messages) {
      const response = await fetch("api/send", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ session, messages }),
        credentials: "same-origin",
        cache: "no-store",
      });
      if (response.status === 429) return false; // the server's inbox is full: try again shortly
      if (!response.ok) finish(ABNORMAL, "the stream was lost");
      return true;
    }

    async function flush() {
      if (posting || closed || session === null || !queue.length) return;
      posting = true;
      const messages = queue.splice(0);
      try {
        if (!(await post(messages))) {
          queue.unshift(...messages);
          setTimeout(flush, 250);
        }
      } catch {
        finish(ABNORMAL, "connection lost");
      } finally {
        posting = false;
      }
      if (queue.length) flush();
    }

    function dispatch(event) {
      if (event.type === "session") {
        session = JSON.parse(event.data).session;
        handlers.onOpen();
      } else if (event.type === "close") {
        const frame = JSON.parse(event.data);
        finish(Number(frame.code) || ABNORMAL, String(frame.reason || ""));
      } else {
        handlers.onMessage(event.data);
      }
    }

    async function refused(response) {
      let text = `the server answered ${response.status}`;
      try {
        const body = await response.json();
        if (body && typeof body.error === "string") text = body.error;
      } catch {
        /* not JSON */
      }
      finish(response.status === 503 ? TRY_AGAIN_LATER : ABNORMAL, text);
    }

    async function read() {
      const response = await fetch("api/stream", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify(hello),
        credentials: "same-origin",
        cache: "no-store",
        signal: controller.signal,
      });
      if (!response.ok || !response.body) return refused(response);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      while (!closed) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer = (buffer + value).replace(/\r\n?/g, "\n");
        let end;
        while (!closed && (end = buffer.indexOf("\n\n")) >= 0) {
          const event = parseBlock(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (event) dispatch(event);
        }
      }
    }

    read().then(
      () => finish(ABNORMAL, ""),
      () => finish(ABNORMAL, ""),
    );

    return {
      kind: "http",
      isOpen: () => !closed && session !== null,
      send(message) {
        if (closed || session === null) return false;
        queue.push(message);
        flush();
        return true;
      },
      close(code = 1000, reason = "") {
        finish(code, reason);
      },
    };
  }

  return Object.freeze({ open });
})();
