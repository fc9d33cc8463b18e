#!/usr/bin/env node
'use strict';
// A Node baseline of the benchmark suite: the least a room server on the npm `ws` package does,
// speaking exactly bench/bare_server.py's protocol, text frames (lib/protocols.js: `bare`):
//
//   join ROOM          -> joined ROOM
//   pub ROOM PAYLOAD   -> PAYLOAD to every member of ROOM (the sender too, if it is a member)
//
// permessage-deflate off, no keepalive pings (ws sends none unless asked). Broadcast is ws's
// idiomatic loop: the same Buffer (a slice of the received frame, not a copy) is sent to each
// member, and ws frames it for each one. ws has no public way to frame once for all members:
// `WebSocket.Sender.frame()` builds a frame, but writing it needs the private `_socket` or
// `_sender` (Socket.IO does that; see bench/README.md).
//
// Run: node bench/node/servers/ws_rooms.js --port PORT; prints `listening on ws://HOST:PORT` once ready.
const { WebSocketServer } = require('ws');
const { listenArgs } = require('./listen_args');

const SPACE = 0x20;
const JOIN = Buffer.from('join ');
const PUB = Buffer.from('pub ');

function startsWith(buf, prefix) {
  return buf.length >= prefix.length && buf.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

const rooms = new Map(); // room -> Set of sockets

function publish(data) {
  const end = data.indexOf(SPACE, PUB.length);
  if (end < 0) return;
  const members = rooms.get(data.toString('utf8', PUB.length, end));
  if (members === undefined) return;
  const payload = data.subarray(end + 1);
  for (const member of members) member.send(payload, { binary: false });
}

function join(ws, joined, room) {
  let members = rooms.get(room);
  if (members === undefined) {
    members = new Set();
    rooms.set(room, members);
  }
  members.add(ws);
  joined.push(room);
  ws.send(`joined ${room}`);
}

function leave(ws, joined) {
  for (const room of joined) {
    const members = rooms.get(room);
    members.delete(ws);
    if (members.size === 0) rooms.delete(room);
  }
}

function main() {
  const { host, port } = listenArgs(process.argv.slice(2), 'ws_rooms.js');
  const server = new WebSocketServer({ host, port, perMessageDeflate: false });
  server.on('connection', (ws) => {
    const joined = [];
    ws.on('message', (data, isBinary) => {
      if (isBinary) return; // the generator sends text frames only
      if (startsWith(data, PUB)) publish(data);
      else if (startsWith(data, JOIN)) join(ws, joined, data.toString('utf8', JOIN.length));
    });
    ws.on('close', () => leave(ws, joined));
    ws.on('error', () => {}); // a client that vanished: 'close' follows
  });
  server.on('listening', () => process.stdout.write(`listening on ws://${host}:${port}\n`));
}

main();
