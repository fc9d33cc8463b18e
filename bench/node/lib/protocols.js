'use strict';
// The three protocols the generator speaks. Each has the same four operations, so that a scenario
// drives wirehub and a baseline server with exactly the same client logic:
//   hello(conn)                  after the WebSocket handshake: authenticate and join conn.room
//   receive(conn, buf)           one text frame; calls conn.joined(), conn.payload(buf, start),
//                                conn.acked() and conn.failed(text) as things arrive
//   publish(conn, room, payload) send one publication
//   channel(room)                how the protocol names a room (for the record)
const CONNECT_ID = 1;
const SUBSCRIBE_ID = 2;
const FIRST_PUBLISH_ID = 3;
const PUSH = Buffer.from('{"push":');
const DATA = Buffer.from('"data":');
const NEWLINE = 0x0a;

function startsWith(buf, start, prefix) {
  return buf.length - start >= prefix.length && buf.compare(prefix, 0, prefix.length, start, start + prefix.length) === 0;
}

// Centrifugo client protocol v2, JSON: newline-separated objects in a frame, both directions.
function wirehub(namespace, token) {
  const channel = (room) => `${namespace}:${room}`;
  return {
    name: 'wirehub',
    channel,
    hello(conn) {
      conn.nextId = FIRST_PUBLISH_ID;
      const commands = [JSON.stringify({ id: CONNECT_ID, connect: { token, name: 'wirehub-bench' } })];
      // connect and subscribe in one frame, as the Centrifugo SDKs do
      if (conn.room !== null) commands.push(JSON.stringify({ id: SUBSCRIBE_ID, subscribe: { channel: channel(conn.room) } }));
      conn.send(commands.join('\n'));
    },
    receive(conn, buf) {
      let start = 0;
      while (start < buf.length) {
        let end = buf.indexOf(NEWLINE, start);
        if (end < 0) end = buf.length;
        if (end > start) this.line(conn, buf, start, end);
        start = end + 1;
      }
    },
    line(conn, buf, start, end) {
      if (startsWith(buf, start, PUSH)) {
        const data = buf.indexOf(DATA, start);
        // pushes other than our publications (none are expected in these namespaces) are ignored
        if (data >= 0 && data < end) conn.payload(buf, data + DATA.length);
        return;
      }
      if (end - start === 2 && buf[start] === 0x7b && buf[start + 1] === 0x7d) {
        conn.send('{}'); // the server's ping: answer with a pong
        return;
      }
      const reply = JSON.parse(buf.toString('utf8', start, end));
      if (reply.error) {
        conn.failed(`reply to command ${reply.id}: ${JSON.stringify(reply.error)}`);
      } else if (reply.id === SUBSCRIBE_ID || (reply.id === CONNECT_ID && conn.room === null)) {
        conn.joined();
      } else if (reply.id >= FIRST_PUBLISH_ID) {
        conn.acked();
      }
    },
    publish(conn, room, payload) {
      conn.expectAck();
      conn.send(`{"id":${conn.nextId++},"publish":{"channel":${JSON.stringify(channel(room))},"data":${payload}}}`);
    },
  };
}

// The bare server's protocol (bench/bare_server.py), text frames:
//   "join ROOM"            -> "joined ROOM"
//   "pub ROOM PAYLOAD"     -> PAYLOAD to every member of ROOM (the sender too, if a member)
function bare() {
  const JOINED = Buffer.from('joined ');
  return {
    name: 'bare',
    channel: (room) => room,
    hello(conn) {
      if (conn.room === null) conn.joined();
      else conn.send(`join ${conn.room}`);
    },
    receive(conn, buf) {
      if (startsWith(buf, 0, JOINED)) conn.joined();
      else conn.payload(buf, 0);
    },
    publish(conn, room, payload) {
      conn.send(`pub ${room} ${payload}`);
    },
  };
}

// Socket.IO v5 over Engine.IO v4, WebSocket transport only (bench/node/servers/socketio_rooms.js),
// one packet per text frame; the URL is ws://HOST:PORT/socket.io/?EIO=4&transport=websocket.
//   <- 0{"sid":...}               Engine.IO open            -> 40 (Socket.IO connect to "/")
//   <- 40{"sid":...}              connected to "/"          -> 42["join","ROOM"]
//   <- 42["joined","ROOM"]        in the room
//   <- 42["m",PAYLOAD]            a publication; PAYLOAD is the JSON object makePayload wrote,
//                                 parsed and encoded again by the server (same keys, same order)
//   <- 2                          Engine.IO ping            -> 3 (pong)
//   publish: 42["pub","ROOM",PAYLOAD]
function socketio() {
  const MESSAGE = Buffer.from('42["m",');
  const JOINED = Buffer.from('42["joined",');
  const CONNECTED = Buffer.from('40');
  const OPEN = 0x30; // "0"
  const PING = 0x32; // "2"
  return {
    name: 'socketio',
    channel: (room) => room,
    hello() {}, // the server speaks first: its open packet
    receive(conn, buf) {
      if (startsWith(buf, 0, MESSAGE)) conn.payload(buf, MESSAGE.length);
      else if (buf.length === 1 && buf[0] === PING) conn.send('3');
      else if (startsWith(buf, 0, JOINED)) conn.joined();
      else if (buf[0] === OPEN) conn.send('40');
      else if (startsWith(buf, 0, CONNECTED)) {
        if (conn.room === null) conn.joined();
        else conn.send(`42${JSON.stringify(['join', conn.room])}`);
      } else conn.failed(`unexpected Socket.IO packet: ${buf.toString('utf8', 0, Math.min(buf.length, 80))}`);
    },
    publish(conn, room, payload) {
      conn.send(`42["pub",${JSON.stringify(room)},${payload}]`);
    },
  };
}

function makeProtocol(name, namespace, token) {
  if (name === 'wirehub') {
    if (!token) throw new Error('the wirehub protocol needs a token in WIREHUB_BENCH_TOKEN');
    return wirehub(namespace, token);
  }
  if (name === 'bare') return bare();
  if (name === 'socketio') return socketio();
  throw new Error(`unknown protocol ${name}`);
}

module.exports = { makeProtocol };
