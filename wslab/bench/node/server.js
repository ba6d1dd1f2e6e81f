// The bench's Node reference: what python -m wslab bench's bare broadcast() server does, on
// Node's ws. A client's first message is its name (plain text) or a json hello; it is then
// told it is in ("Welcome, <name>!" or {"type":"live"}), and every later message goes to
// every other client: as it came (json), or as the line "[<name>] <message>" (plain).
// Prints {"url": ..., "pid": ...} once listening; exits when its stdin closes.
"use strict";

const { WebSocketServer, WebSocket } = require("ws");

const compression = process.argv[2] === "deflate";
const clients = new Set();
const server = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: compression });

server.on("connection", (socket) => {
  let name = null;
  let plain = false;
  socket.on("message", (data) => {
    const text = data.toString();
    if (name === null) {
      name = text;
      plain = !text.startsWith("{");
      clients.add(socket);
      socket.send(plain ? `Welcome, ${name}!` : '{"type":"live"}');
      return;
    }
    const message = plain ? `[${name}] ${text}` : text;
    for (const client of clients) {
      if (client !== socket && client.readyState === WebSocket.OPEN) client.send(message);
    }
  });
  socket.on("close", () => clients.delete(socket));
  socket.on("error", () => clients.delete(socket));
});

server.on("listening", () => {
  const { port } = server.address();
  process.stdout.write(JSON.stringify({ url: `ws://127.0.0.1:${port}/`, pid: process.pid }) + "\n");
});

process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
