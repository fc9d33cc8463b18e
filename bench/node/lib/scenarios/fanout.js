'use strict';
// One publisher, N subscribers of one room. Closed loop (--rate 0): publication k is sent once
// every subscriber has had k - window, so no subscriber ever has more than --window undelivered.
// Fixed rate (--rate R): R publications a second on a schedule, whatever the server does.
const { Connection } = require('../connection');
const { makePayload } = require('../payload');
const { CpuWindow } = require('../procfs');
const { openAll, closeAll, sleep, waitUntil } = require('../pool');
const { Deliveries, Ledger } = require('../stats');

const ROOM = 'fan';
const WARMUP_TIMEOUT_MS = 30000;
const ACK_TIMEOUT_MS = 5000;
const DRAIN_TIMEOUT_MS = 30000;

async function fanout(options, protocol, problems) {
  const messages = options.messages;
  const deliveries = new Deliveries();
  const ledgers = [];
  const receivedBy = new Uint32Array(messages); // subscribers that have publication k
  let warmupReceived = 0;
  let subscriberCount = 0;
  let fullyDelivered = 0; // publications 0..fullyDelivered-1 reached every subscriber
  let onFullyDelivered = () => {};

  const events = {
    onPayload(conn, payload, nowMs) {
      if (!payload.measured) {
        warmupReceived += 1;
        return;
      }
      if (payload.seq >= messages || conn.room === null) {
        problems.add(`connection ${conn.id}: unexpected publication ${payload.seq}`);
        return;
      }
      const latencyMs = nowMs - payload.sentUs / 1000;
      if (!deliveries.count(ledgers[conn.id], payload.from, payload.seq, latencyMs, nowMs)) return;
      receivedBy[payload.seq] += 1;
      if (payload.seq === fullyDelivered && receivedBy[payload.seq] === subscriberCount) {
        while (fullyDelivered < messages && receivedBy[fullyDelivered] === subscriberCount) fullyDelivered += 1;
        onFullyDelivered();
      }
    },
    onError(conn, text) {
      problems.add(`connection ${conn.id}: ${text}`);
    },
  };

  const connectStartMs = performance.now();
  const subscribers = await openAll({
    url: options.url, protocol, count: options.subscribers, roomOf: () => ROOM,
    concurrency: options.concurrency, events, problems,
  });
  subscriberCount = subscribers.length;
  for (const conn of subscribers) ledgers[conn.id] = new Ledger();
  const publisher = await new Connection(options.subscribers, null, protocol, events).open(options.url);
  const connectS = (performance.now() - connectStartMs) / 1000;
  const all = [...subscribers, publisher];
  try {
    // Warm-up, and a barrier: once every subscriber has every warm-up publication, the
    // subscriptions are in place and nothing else is queued for them.
    for (let i = 0; i < options.warmup; i += 1) publisher.publish(ROOM, makePayload('b', i, publisher.id, options.payloadBytes));
    const warm = await waitUntil({
      done: () => warmupReceived === options.warmup * subscriberCount,
      lastActivityMs: () => performance.now(), quietMs: 0, deadlineMs: performance.now() + WARMUP_TIMEOUT_MS,
    });
    if (warm !== 'done') problems.add(`warm-up: ${warmupReceived} of ${options.warmup * subscriberCount} delivered`);

    const pacing = { firstMs: 0, lastMs: 0, maxLagMs: 0 };
    let published = 0;
    const publishNext = () => {
      const now = performance.now();
      pacing.firstMs = pacing.firstMs || now;
      pacing.lastMs = now;
      publisher.publish(ROOM, makePayload('s', published, publisher.id, options.payloadBytes));
      published += 1;
    };
    const mayPublish = () => published < messages && published < fullyDelivered + options.window;
    const cpu = new CpuWindow(options.serverPid, options.auxPids);
    let stopPublishing;
    if (options.rate > 0) {
      stopPublishing = publishAtRate(options, publishNext, () => published, pacing);
    } else {
      stopPublishing = publishInClosedLoop(publishNext, mayPublish);
      onFullyDelivered = stopPublishing.pump;
    }
    const budgetS = options.rate > 0 ? messages / options.rate + options.quietS : options.durationS;
    const ended = await waitUntil({
      done: () => deliveries.unique === subscriberCount * messages,
      lastActivityMs: () => Math.max(deliveries.lastAtMs, pacing.lastMs),
      quietMs: options.quietS * 1000,
      deadlineMs: performance.now() + budgetS * 1000,
    });
    stopPublishing.stop();
    const window = cpu.end();
    const deliveredInWindow = deliveries.unique;
    const spanS = (deliveries.lastAtMs - pacing.firstMs) / 1000;
    // What is still in flight is not lost: wait for it (outside the measured window).
    await waitUntil({
      done: () => deliveries.unique === subscriberCount * published,
      lastActivityMs: () => deliveries.lastAtMs, quietMs: options.quietS * 1000, deadlineMs: performance.now() + DRAIN_TIMEOUT_MS,
    });
    await waitUntil({
      done: () => publisher.acks === publisher.acksWanted,
      lastActivityMs: () => performance.now(), quietMs: 0, deadlineMs: performance.now() + ACK_TIMEOUT_MS,
    });
    if (publisher.acks !== publisher.acksWanted) problems.add(`${publisher.acksWanted - publisher.acks} publish replies missing`);

    const expected = subscriberCount * published;
    return {
      subscribers: subscriberCount,
      connect_s: connectS,
      ended,
      published,
      expected,
      delivered: deliveries.unique,
      lost: expected - deliveries.unique,
      duplicates: deliveries.duplicates,
      delivered_in_window: deliveredInWindow,
      deliveries_per_s: spanS > 0 ? deliveredInWindow / spanS : 0,
      server_cpu_us_per_delivery: deliveredInWindow ? (window.server_cpu_s * 1e6) / deliveredInWindow : null,
      publisher_max_lag_ms: pacing.maxLagMs,
      latency: deliveries.latencies.summary(),
      ...window,
    };
  } finally {
    closeAll(all);
    await sleep(200);
  }
}

// Publishes whenever the window allows; `pump` is called again as publications complete.
function publishInClosedLoop(publishNext, mayPublish) {
  let open = true;
  const pump = () => {
    while (open && mayPublish()) publishNext();
  };
  pump();
  return { pump, stop: () => { open = false; } };
}

// Publishes on the schedule first + k/rate (late sends catch up at once; the worst lateness is
// recorded).
function publishAtRate(options, publishNext, publishedSoFar, pacing) {
  const startMs = performance.now();
  const intervalMs = 1000 / options.rate;
  let timer = null;
  const tick = () => {
    const now = performance.now();
    while (publishedSoFar() < options.messages && startMs + publishedSoFar() * intervalMs <= now) {
      pacing.maxLagMs = Math.max(pacing.maxLagMs, now - (startMs + publishedSoFar() * intervalMs));
      publishNext();
    }
    if (publishedSoFar() < options.messages) {
      timer = setTimeout(tick, Math.max(0, startMs + publishedSoFar() * intervalMs - performance.now()));
    }
  };
  tick();
  return { stop: () => clearTimeout(timer) };
}

module.exports = { fanout };
