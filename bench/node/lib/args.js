'use strict';
// Command-line options of the load generator. Every option has a default, so that a scenario
// is fully described by the options the suite passes (they are echoed in the result).

const DEFAULTS = {
  scenario: 'fanout', // fanout | rooms | idle
  url: '', // ws://127.0.0.1:PORT/...; loopback only
  protocol: 'wirehub', // wirehub | bare | socketio
  namespace: 'bench', // wirehub channels are "<namespace>:<room>"; the baselines have none
  serverPid: 0, // /proc figures of this process (CPU, RSS)
  auxPids: '', // comma-separated: other processes of the system under test (a store), CPU only
  subscribers: 1000, // fanout
  messages: 500, // fanout: measured publications
  rate: 0, // fanout: publications per second; 0 = closed loop
  window: 4, // closed loop: publications in flight per subscriber (fanout) or per member (rooms)
  rooms: 500, // rooms
  members: 4, // rooms
  connections: 5000, // idle
  settleS: 2, // idle: wait after the last subscribe before reading RSS
  durationS: 10, // fanout closed loop and rooms: how long the measured phase may last
  payloadBytes: 100, // size of each publication's data
  warmup: 20, // fanout: unmeasured publications before the measured ones
  concurrency: 100, // handshakes in flight while connecting
  quietS: 3, // a phase ends early when nothing has arrived for this long after the last publish
  timeoutS: 120, // the whole run; past it the generator exits with an error result
};

function camel(flag) {
  return flag.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
}

function parseArgs(argv) {
  const options = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    if (!flag.startsWith('--')) throw new Error(`unexpected argument ${flag}`);
    const key = camel(flag.slice(2));
    if (!(key in DEFAULTS)) throw new Error(`unknown option ${flag}`);
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    i += 1;
    if (typeof DEFAULTS[key] === 'number') {
      const number = Number(value);
      if (!Number.isFinite(number) || number < 0) throw new Error(`${flag}: not a number >= 0: ${value}`);
      options[key] = number;
    } else {
      options[key] = value;
    }
  }
  requireLoopback(options.url);
  options.auxPids = options.auxPids ? options.auxPids.split(',').map(Number) : [];
  return options;
}

// Benchmark traffic goes to this machine only.
function requireLoopback(url) {
  let host;
  try {
    host = new URL(url).hostname;
  } catch {
    throw new Error(`--url is not a URL: ${url}`);
  }
  const loopback = host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
  if (!loopback) throw new Error(`refusing a target that is not on the loopback interface: ${host}`);
}

module.exports = { parseArgs };
