'use strict';
// One client connection: a `ws` WebSocket, driven by a protocol (lib/protocols.js). It joins one
// room (or none, for a publisher), and hands every publication it receives to `onPayload`.
const WebSocket = require('ws');
const { readPayload } = require('./payload');

class Connection {
  // id: this connection's number (the FROM of its publications); room: null joins nothing.
  constructor(id, room, protocol, events) {
    this.id = id;
    this.room = room;
    this.protocol = protocol;
    this.events = events; // { onPayload(conn, payload, nowMs), onError(conn, text) }
    this.ws = null;
    this.state = 'opening'; // -> 'joined' | 'failed'
    this.closing = false;
    this.published = 0;
    this.acksWanted = 0;
    this.acks = 0;
    this.payloadSlot = { measured: false, seq: 0, from: 0, sentUs: 0 };
    this.settle = null;
  }

  // Resolves once the connection is authenticated and in its room; rejects if it fails first.
  open(url) {
    return new Promise((resolve, reject) => {
      this.settle = { resolve, reject };
      const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true, maxPayload: 0 });
      this.ws = ws;
      ws.on('open', () => this.protocol.hello(this));
      ws.on('message', (data) => this.protocol.receive(this, data));
      ws.on('error', (err) => this.failed(`socket error: ${err.message}`));
      ws.on('close', (code, reason) => {
        if (!this.closing) this.failed(`closed by the server: ${code} ${reason}`);
      });
    });
  }

  send(text) {
    this.ws.send(text);
  }

  publish(room, payload) {
    this.published += 1;
    this.protocol.publish(this, room, payload);
  }

  // ---- called by the protocol

  joined() {
    if (this.state !== 'opening') return;
    this.state = 'joined';
    this.settle.resolve(this);
  }

  payload(buf, start) {
    const now = performance.now();
    if (readPayload(buf, start, this.payloadSlot)) this.events.onPayload(this, this.payloadSlot, now);
    else this.failed(`unexpected message: ${buf.toString('utf8', start, Math.min(buf.length, start + 80))}`);
  }

  expectAck() {
    this.acksWanted += 1;
  }

  acked() {
    this.acks += 1;
  }

  // A connection that failed to open is reported once, by open()'s rejection.
  failed(text) {
    if (this.state === 'opening') {
      this.state = 'failed';
      this.settle.reject(new Error(text));
    } else if (this.state === 'joined') {
      this.events.onError(this, text);
    }
  }

  close() {
    this.closing = true;
    if (this.ws !== null) this.ws.terminate();
  }
}

module.exports = { Connection };
