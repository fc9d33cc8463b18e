#!/usr/bin/env node
'use strict';
// wirehub's load generator: one scenario against one server, one JSON result on stdout.
//
//   node loadgen.js --scenario fanout --url ws://127.0.0.1:PORT/connection/websocket \
//                   --protocol wirehub --server-pid PID [options]   (token in WIREHUB_BENCH_TOKEN)
//
// Scenarios (lib/scenarios/): fanout, rooms, idle. Protocols (lib/protocols.js): wirehub, bare,
// socketio. The baseline servers in servers/ (ws_rooms.js, socketio_rooms.js) use the same packages.
// Options and defaults: lib/args.js. Traffic goes to loopback addresses only; every phase is
// bounded in count and time, and --timeout-s bounds the whole run. The suite (bench/suite) runs
// this for every server and aggregates the results.
const { parseArgs } = require('./lib/args');
const { makeProtocol } = require('./lib/protocols');
const { Problems } = require('./lib/stats');
const { fanout } = require('./lib/scenarios/fanout');
const { rooms } = require('./lib/scenarios/rooms');
const { idle } = require('./lib/scenarios/idle');

const SCENARIOS = { fanout, rooms, idle };

function emit(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
    if (!(options.scenario in SCENARIOS)) throw new Error(`unknown scenario ${options.scenario}`);
  } catch (err) {
    process.stderr.write(`loadgen: ${err.message}\n`);
    process.exit(2);
  }
  const deadline = setTimeout(() => {
    emit({ scenario: options.scenario, error: `timed out after ${options.timeoutS} s` });
    process.exit(3);
  }, options.timeoutS * 1000);
  deadline.unref();

  const problems = new Problems();
  const protocol = makeProtocol(options.protocol, options.namespace, process.env.WIREHUB_BENCH_TOKEN || '');
  let figures;
  try {
    figures = await SCENARIOS[options.scenario](options, protocol, problems);
  } catch (err) {
    figures = { error: err.message };
  }
  emit({ scenario: options.scenario, protocol: protocol.name, options, ...figures, problems: problems.summary() });
  process.exit(0);
}

main();
