'use strict';
// Opening and closing many connections: a bounded number of handshakes in flight, so that the
// server's accept backlog is not what is measured.
const { Connection } = require('./connection');

// Opens `count` connections, connection i joining roomOf(i); failures are added to `problems`.
async function openAll({ url, protocol, count, roomOf, concurrency, events, problems }) {
  const opened = [];
  let next = 0;
  async function worker() {
    while (next < count) {
      const id = next;
      next += 1;
      const conn = new Connection(id, roomOf(id), protocol, events);
      try {
        opened.push(await conn.open(url));
      } catch (err) {
        problems.add(`connect ${id}: ${err.message}`);
        conn.close();
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  opened.sort((a, b) => a.id - b.id);
  return opened;
}

function closeAll(conns) {
  for (const conn of conns) conn.close();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Waits until `done()` is true (checked every 20 ms: the figures use exact timestamps, not this
// poll), or nothing happened for `quietMs` since `lastActivityMs()`, or `deadlineMs`; returns why.
async function waitUntil({ done, lastActivityMs, quietMs, deadlineMs }) {
  for (;;) {
    if (done()) return 'done';
    const now = performance.now();
    if (now >= deadlineMs) return 'deadline';
    if (quietMs > 0 && now - lastActivityMs() >= quietMs) return 'quiet';
    await sleep(20);
  }
}

module.exports = { openAll, closeAll, sleep, waitUntil };
