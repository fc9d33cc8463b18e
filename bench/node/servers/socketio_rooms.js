#!/usr/bin/env node
'use strict';
// A Node baseline of the benchmark suite: a Socket.IO 4 room server, the same rooms as
// bench/bare_server.py in Socket.IO's own idiom (the generator speaks Engine.IO v4 / Socket.IO v5
// to it: lib/protocols.js, `socketio`):
//
//   emit('join', ROOM)           -> socket.join(ROOM), emit('joined', ROOM) back
//   emit('pub', ROOM, PAYLOAD)   -> io.to(ROOM).emit('m', PAYLOAD) (the sender too, if a member)
//
// WebSocket transport only (no HTTP long-polling), permessage-deflate off, Socket.IO's default
// pings (every 25 s; the generator answers them). PAYLOAD arrives parsed from JSON and is encoded
// again once per broadcast; Socket.IO's in-memory adapter then frames it once for all members
// (`WebSocket.Sender.frame()`) and engine.io writes that frame to each member's socket.
//
// Run: node bench/node/servers/socketio_rooms.js --port PORT; prints `listening on ws://HOST:PORT` once ready.
const http = require('http');
const { Server } = require('socket.io');
const { listenArgs } = require('./listen_args');

function main() {
  const { host, port } = listenArgs(process.argv.slice(2), 'socketio_rooms.js');
  const httpServer = http.createServer();
  const io = new Server(httpServer, { transports: ['websocket'], perMessageDeflate: false, serveClient: false });
  io.on('connection', (socket) => {
    socket.on('join', (room) => {
      socket.join(room);
      socket.emit('joined', room);
    });
    socket.on('pub', (room, payload) => {
      io.to(room).emit('m', payload);
    });
  });
  httpServer.listen(port, host, () => process.stdout.write(`listening on ws://${host}:${port}\n`));
}

main();
