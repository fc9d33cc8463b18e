'use strict';
// `--host HOST --port PORT` of the baseline servers (the suite passes --port; host defaults to
// loopback), as bench/bare_server.py takes them.

function listenArgs(argv, name) {
  const options = { host: '127.0.0.1', port: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--host' && value) options.host = value;
    else if (flag === '--port' && /^\d+$/.test(value || '')) options.port = Number(value);
    else throw new Error(`usage: node ${name} [--host HOST] --port PORT (got ${flag} ${value})`);
  }
  if (!options.port) throw new Error(`usage: node ${name} [--host HOST] --port PORT`);
  return options;
}

module.exports = { listenArgs };
