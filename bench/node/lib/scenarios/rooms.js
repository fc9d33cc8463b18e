'use strict';
// --rooms R rooms of --members K; every member publishes into its room, closed loop: a member
// keeps --window publications in flight and sends the next when one of its own comes back.
// The measured phase lasts --duration-s; then publishing stops and what is in flight drains.
const { makePayload } = require('../payload');
const { CpuWindow } = require('../procfs');
const { openAll, closeAll, sleep, waitUntil } = require('../pool');
const { Deliveries, Ledger } = require('../stats');

const BARRIER_TIMEOUT_MS = 30000;
const DRAIN_TIMEOUT_MS = 30000;
const ACK_TIMEOUT_MS = 5000;

async function rooms(options, protocol, problems) {
  const members = options.members;
  const deliveries = new Deliveries();
  const ledgers = [];
  let barriersReceived = 0;
  let publishing = false;
  const roomOf = (id) => `r${Math.floor(id / members)}`;

  const events = {
    onPayload(conn, payload, nowMs) {
      if (!payload.measured) {
        barriersReceived += 1;
        return;
      }
      if (roomOf(payload.from) !== conn.room) {
        problems.add(`connection ${conn.id}: publication of ${payload.from} from another room`);
        return;
      }
      const latencyMs = nowMs - payload.sentUs / 1000;
      const isNew = deliveries.count(ledgers[conn.id], payload.from, payload.seq, latencyMs, nowMs);
      if (isNew && publishing && payload.from === conn.id) publishNext(conn);
    },
    onError(conn, text) {
      problems.add(`connection ${conn.id}: ${text}`);
    },
  };
  // A member's measured publications are numbered from 0: its first publication was the barrier.
  const publishNext = (conn) => conn.publish(conn.room, makePayload('s', conn.published - 1, conn.id, options.payloadBytes));

  const connectStartMs = performance.now();
  const conns = await openAll({
    url: options.url, protocol, count: options.rooms * members, roomOf,
    concurrency: options.concurrency, events, problems,
  });
  const connectS = (performance.now() - connectStartMs) / 1000;
  const roomSize = new Map();
  for (const conn of conns) {
    ledgers[conn.id] = new Ledger();
    roomSize.set(conn.room, (roomSize.get(conn.room) || 0) + 1);
  }
  const barriersWanted = [...roomSize.values()].reduce((sum, size) => sum + size * size, 0);
  try {
    // Barrier: every member publishes once; once each has its room's, every subscription is in place.
    for (const conn of conns) conn.publish(conn.room, makePayload('b', 0, conn.id, options.payloadBytes));
    const barrier = await waitUntil({
      done: () => barriersReceived === barriersWanted,
      lastActivityMs: () => performance.now(), quietMs: 0, deadlineMs: performance.now() + BARRIER_TIMEOUT_MS,
    });
    if (barrier !== 'done') problems.add(`barrier: ${barriersReceived} of ${barriersWanted} delivered`);

    const barrierPublications = conns.length;
    const cpu = new CpuWindow(options.serverPid, options.auxPids);
    const startMs = performance.now();
    publishing = true;
    for (const conn of conns) for (let w = 0; w < options.window; w += 1) publishNext(conn);
    await sleep(options.durationS * 1000);
    publishing = false;
    const window = cpu.end();
    const deliveredInWindow = deliveries.unique;
    const spanS = (performance.now() - startMs) / 1000;
    const published = conns.reduce((sum, conn) => sum + conn.published, 0) - barrierPublications;
    const expected = conns.reduce((sum, conn) => sum + (conn.published - 1) * roomSize.get(conn.room), 0);
    // What is still in flight is not lost: wait for it (outside the measured window).
    await waitUntil({
      done: () => deliveries.unique === expected,
      lastActivityMs: () => deliveries.lastAtMs, quietMs: options.quietS * 1000, deadlineMs: performance.now() + DRAIN_TIMEOUT_MS,
    });
    const unacked = () => conns.reduce((sum, conn) => sum + conn.acksWanted - conn.acks, 0);
    await waitUntil({
      done: () => unacked() === 0, lastActivityMs: () => performance.now(), quietMs: 0, deadlineMs: performance.now() + ACK_TIMEOUT_MS,
    });
    if (unacked()) problems.add(`${unacked()} publish replies missing`);
    return {
      connections: conns.length,
      connect_s: connectS,
      published,
      expected,
      delivered: deliveries.unique,
      lost: expected - deliveries.unique,
      duplicates: deliveries.duplicates,
      delivered_in_window: deliveredInWindow,
      deliveries_per_s: deliveredInWindow / spanS,
      server_cpu_us_per_delivery: deliveredInWindow ? (window.server_cpu_s * 1e6) / deliveredInWindow : null,
      latency: deliveries.latencies.summary(),
      ...window,
    };
  } finally {
    closeAll(conns);
    await sleep(200);
  }
}

module.exports = { rooms };
