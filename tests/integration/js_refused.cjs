// The official socket.io-client facing a refusal: how its first connect_error looks.
// usage: node js_refused.cjs URL TOKEN TRANSPORT   (TRANSPORT: websocket | polling)
// Prints one JSON line {message, description, data}; exit 1 if it connects or after 15 s.
const path = require("node:path");
const { createRequire } = require("node:module");
const clientWeb = path.resolve(__dirname, "../../client_web/package.json");
const { io } = createRequire(clientWeb)("socket.io-client");

const [url, token, transport] = process.argv.slice(2);
const timer = setTimeout(() => {
  console.error("timed out");
  process.exit(1);
}, 15000);

const socket = io(url, {
  transports: [transport],
  upgrade: false,
  reconnection: false,
  auth: { token, versions: [1], encoding: "json" },
});
socket.on("connect", () => {
  console.error("connected, but a refusal was expected");
  process.exit(1);
});
socket.on("connect_error", (err) => {
  clearTimeout(timer);
  const description = err.description;
  const status = typeof description === "number" ? description : (description && description.status) || null;
  console.log(JSON.stringify({ message: err.message, status, data: err.data ?? null }));
  socket.close();
  process.exit(0);
});
