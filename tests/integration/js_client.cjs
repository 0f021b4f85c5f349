// The official socket.io-client (client_web's locked version) against a Liaison server.
// usage: node js_client.cjs URL TOKEN INCIDENT TRANSPORT   (TRANSPORT: websocket | polling)
// Prints one JSON line: what the client saw. Exit 1 on any failure or after 15 s.
const path = require("node:path");
const { createRequire } = require("node:module");
const clientWeb = path.resolve(__dirname, "../../client_web/package.json");
const { io } = createRequire(clientWeb)("socket.io-client");

const [url, token, incident, transport] = process.argv.slice(2);
const timer = setTimeout(() => fail(new Error("timed out")), 15000);

function fail(err) {
  console.error(String(err && err.stack ? err.stack : err));
  process.exit(1);
}

const socket = io(url, {
  transports: [transport],
  upgrade: false,
  reconnection: false,
  auth: { token, versions: [1], encoding: "json" },
});
socket.on("connect_error", fail);
socket.on("welcome", async (welcome) => {
  try {
    const seen = [];
    socket.on("ev", (batch) => seen.push(...batch.map((e) => e.seq)));
    const follow = await socket.timeout(5000).emitWithAck("cmd", {
      type: "follow",
      incidents: [{ incident, after_seq: 0 }],
    });
    const post = await socket.timeout(5000).emitWithAck("cmd", {
      type: "message.post", incident, text: "from socket.io-client", id: `js-${transport}`,
    });
    const unknown = await socket.timeout(5000).emitWithAck("nonsense", {});
    while (!seen.includes(post.seq)) await new Promise((r) => setTimeout(r, 10));
    const out = {
      encoding: welcome.encoding,
      transport: socket.io.engine.transport.name,
      follow: follow.ok, post, unknown, seen,
    };
    console.log(JSON.stringify(out));
    clearTimeout(timer);
    socket.close();
  } catch (err) {
    fail(err);
  }
});
