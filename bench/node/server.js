// Node socket.io reference server for Liaison's benchmark.
//
// Same behaviour as bench/baseline_socketio.py, so the three servers are driven
// by the same load client: any auth is accepted; `cmd` {type:"follow"} joins
// one room per incident; `cmd` {type:"message.post"} broadcasts one envelope to
// the room with `io.to(room).emit("ev", [envelope])` and acks {ok, seq}. No
// persistence, no validation: this is the ceiling a plain broadcast reaches.
//
// With REDIS_URL set (workload E), the node joins the others on that Redis
// through the official @socket.io/redis-adapter: `io.to(room).emit` then
// reaches the room's members on every node, as in a scaled-out deployment.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const port = Number(process.argv[2] || process.env.PORT || 0);
const host = "127.0.0.1";
const seqs = new Map();

const httpServer = http.createServer((req, res) => {
  res.writeHead(404).end();
});
const io = new Server(httpServer, { serveClient: false });

async function joinRedis(url) {
  const { createClient } = require("redis");
  const { createAdapter } = require("@socket.io/redis-adapter");
  const pub = createClient({ url });
  const sub = pub.duplicate();
  for (const client of [pub, sub]) {
    client.on("error", (err) => console.error(`redis client error: ${err.message}`));
  }
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
}

function follow(socket, cmd) {
  const incidents = Array.isArray(cmd.incidents) ? cmd.incidents : [];
  return incidents.map((target) => {
    socket.join(String(target.incident));
    return { incident: target.incident, status: "ok", head_seq: seqs.get(target.incident) || 0 };
  });
}

function post(socket, cmd) {
  const incident = String(cmd.incident);
  const seq = (seqs.get(incident) || 0) + 1;
  seqs.set(incident, seq);
  const envelope = {
    v: 1,
    type: "message.posted",
    incident,
    seq,
    ts: Date.now(),
    cid: cmd.id,
    body: { text: cmd.text },
  };
  io.to(incident).emit("ev", [envelope]);
  return seq;
}

io.on("connection", (socket) => {
  socket.on("cmd", (cmd, ack) => {
    const reply = typeof ack === "function" ? ack : () => {};
    if (!cmd || typeof cmd !== "object") {
      reply({ ok: false, error: { code: "malformed" } });
    } else if (cmd.type === "follow") {
      reply({ ok: true, incidents: follow(socket, cmd) });
    } else if (cmd.type === "message.post") {
      reply({ ok: true, incident: cmd.incident, seq: post(socket, cmd) });
    } else {
      reply({ ok: false, error: { code: "unknown_type" } });
    }
  });
});

const ready = process.env.REDIS_URL ? joinRedis(process.env.REDIS_URL) : Promise.resolve();
ready.then(
  () =>
    httpServer.listen(port, host, () => {
      const on = process.env.REDIS_URL ? ` (Redis adapter: ${process.env.REDIS_URL})` : "";
      console.log(`node socket.io reference on http://${host}:${httpServer.address().port}${on}`);
    }),
  (err) => {
    console.error(`could not join Redis: ${err.message}`);
    process.exit(1);
  },
);

function stop() {
  io.close();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
