'use strict';
// --connections N idle connections, each authenticated and in a room of its own; the server's
// resident memory per connection is (VmRSS after - VmRSS before) / N, so the suite gives every
// repetition a fresh server process.
const { CpuWindow, rssKiB } = require('../procfs');
const { openAll, closeAll, sleep } = require('../pool');

async function idle(options, protocol, problems) {
  if (!options.serverPid) throw new Error('idle needs --server-pid');
  const events = {
    onPayload(conn) {
      problems.add(`connection ${conn.id}: unexpected publication`);
    },
    onError(conn, text) {
      problems.add(`connection ${conn.id}: ${text}`);
    },
  };
  const rssBeforeKiB = rssKiB(options.serverPid);
  const cpu = new CpuWindow(options.serverPid, options.auxPids);
  const conns = await openAll({
    url: options.url, protocol, count: options.connections, roomOf: (id) => `idle${id}`,
    concurrency: options.concurrency, events, problems,
  });
  const window = cpu.end(); // the connect phase: handshakes, authentication, subscriptions
  try {
    await sleep(options.settleS * 1000);
    const rssAfterKiB = rssKiB(options.serverPid);
    return {
      connections: conns.length,
      lost: 0,
      connect_s: window.wall_s,
      connections_per_s: conns.length / window.wall_s,
      server_cpu_us_per_connection: conns.length ? (window.server_cpu_s * 1e6) / conns.length : null,
      rss_before_kib: rssBeforeKiB,
      rss_after_kib: rssAfterKiB,
      kib_per_connection: conns.length ? (rssAfterKiB - rssBeforeKiB) / conns.length : null,
      ...window,
    };
  } finally {
    closeAll(conns);
    await sleep(200);
  }
}

module.exports = { idle };
