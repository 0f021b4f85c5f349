// An example Liaison bot in JavaScript, with the official socket.io-client (v4).
//
//   npm install socket.io-client                  # Node 18 or later
//   export LIAISON_URL=http://127.0.0.1:8080
//   export LIAISON_KEY=$(liaison key create cad-bot --name js --commands message.post)
//   node js_bot.cjs CAD-2026-0042 "Unit 12 on scene" [--timeout 30]
//
// It finds the incident carrying the CAD number (GET /api/v1/incidents?ref=),
// connects with the bot's API key, follows the incident (its history, then
// live), posts the message once, and prints every event it receives as one
// JSON line. It exits 0 once its own message has come back as an event, 1 on
// any failure or after --timeout seconds. What it shows (protocol/SPEC.md):
//
// * The API key goes where a token goes: `auth.token` at connect (4.3).
// * Wait for `welcome`, then `follow` (5.3, 8.1). After every reconnect,
//   follow again from the last seq you hold: the server replays nothing by
//   itself (11.4). Events of an incident come in seq order; a jump means
//   something was missed: follow again from your position (11.3).
// * Commands go as `cmd` with an ack (7). The message's `id` is derived from
//   what it says, so a retry, or running the bot again, stores it once: the
//   ack of a retry is the original event's, with `duplicate: true` (12).
"use strict";
const crypto = require("node:crypto");
const { io } = require("socket.io-client");

const url = process.env.LIAISON_URL || "http://127.0.0.1:8080";
const key = process.env.LIAISON_KEY || "";
const args = process.argv.slice(2);
const timeoutAt = args.indexOf("--timeout");
const timeoutS = timeoutAt >= 0 ? Number(args.splice(timeoutAt, 2)[1]) : 30;
const [ref, text] = args;
if (!key.startsWith("lk_") || !ref || !text) {
  fail("usage: LIAISON_KEY=lk_... node js_bot.cjs CAD-NUMBER TEXT [--timeout S]");
}
setTimeout(() => fail(`timed out after ${timeoutS} s`), timeoutS * 1000);

function fail(why) {
  console.error(`js_bot: ${why}`);
  process.exit(1);
}

function print(line) {
  console.log(JSON.stringify(line));
}

async function incidentFor(cadNumber) {
  const resp = await fetch(`${url}/api/v1/incidents?ref=${encodeURIComponent(cadNumber)}`, {
    headers: { Authorization: `Bearer ${key}` },
  });
  const answer = await resp.json();
  if (!resp.ok) throw new Error(`${resp.status} ${answer.error.code}: ${answer.error.message}`);
  if (answer.incidents.length === 0) throw new Error(`no incident carries ${cadNumber}`);
  return answer.incidents[0].id;
}

/** Send a command; on a lost ack (a timeout) send it again with the same id. */
async function command(socket, cmd, attempts = 3) {
  for (let attempt = 1; ; attempt++) {
    try {
      const ack = await socket.timeout(5000).emitWithAck("cmd", cmd);
      if (!ack.ok) throw new Error(`${ack.error.code}: ${ack.error.message}`);
      return ack;
    } catch (err) {
      if (attempt >= attempts || !String(err).includes("timed out")) throw err;
    }
  }
}

async function main() {
  const incident = await incidentFor(ref);
  print({ incident, ref });
  const messageId = "msg-" + crypto.createHash("sha256").update(`${incident}\n${text}`).digest("hex").slice(0, 24);
  let position = { after_seq: 0, epoch: undefined }; // the last event we hold
  let posted = null; // the ack of our message, once we have it

  const socket = io(url, {
    transports: ["websocket"],
    auth: { token: key, versions: [1], encoding: "json" },
  });
  const follow = () =>
    command(socket, { type: "follow", incidents: [{ incident, ...position }] }).then((ack) => {
      const result = ack.incidents[0];
      if (result.status === "resync_required" || result.status === "out_of_range") {
        position = { after_seq: 0, epoch: result.epoch }; // the log was replaced: start over
        return follow();
      }
      if (result.status !== "ok") throw new Error(`follow: ${result.status}`);
    });
  const done = () => {
    if (posted && position.after_seq >= posted.seq) {
      print({ done: true, message_seq: posted.seq });
      socket.close();
      process.exit(0);
    }
  };

  socket.on("connect_error", (err) => {
    if (!socket.active) fail(`refused: ${err.message}`); // e.g. unauthenticated: a bad key
  });
  socket.on("notice", (notice) => print({ notice }));
  socket.on("ev", (batch) => {
    for (const event of batch) {
      if (event.incident !== incident || event.seq <= position.after_seq) continue;
      if (event.seq !== position.after_seq + 1) {
        follow().catch((err) => fail(err.message)); // a gap: read again from what we hold
        return;
      }
      position = { after_seq: event.seq, epoch: event.epoch };
      print({ event });
    }
    done();
  });
  // Sent after every (re)connect: follow from where we are, then post (once).
  socket.on("welcome", async (welcome) => {
    try {
      print({ welcome: welcome.user });
      await follow();
      if (!posted) {
        posted = await command(socket, { type: "message.post", id: messageId, incident, text });
        print({ posted });
      }
      done();
    } catch (err) {
      fail(err.message);
    }
  });
}

main().catch((err) => fail(err.message));
