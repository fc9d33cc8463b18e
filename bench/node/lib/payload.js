'use strict';
// The publications' data: one JSON object with a fixed field order, so that the generator can read
// it back with a few byte comparisons instead of JSON.parse (tens of thousands of deliveries a
// second on one core). wirehub re-encodes data compactly and keeps the key order; the bare server
// passes it on verbatim.
//
//   {"s":SEQ,"f":FROM,"t":SENT_US,"p":"xxx..."}   a measured publication
//   {"b":SEQ,"f":FROM,"t":SENT_US,"p":"xxx..."}   a barrier/warm-up publication, not measured
//
// SEQ counts the sender's publications, FROM is the sender's connection number, SENT_US is
// performance.now() in microseconds when it was sent: the same clock the receivers read.

const MEASURED = 's'.charCodeAt(0);
const BARRIER = 'b'.charCodeAt(0);
const PADDING = 'x'.repeat(65536);

function nowUs() {
  return Math.round(performance.now() * 1000);
}

function makePayload(kind, seq, from, sizeBytes) {
  const head = `{"${kind}":${seq},"f":${from},"t":${nowUs()},"p":"`;
  return `${head}${PADDING.slice(0, Math.max(0, sizeBytes - head.length - 2))}"}`;
}

// Reads a payload starting at buf[start] (its opening brace) into `out`; false if it is not one.
function readPayload(buf, start, out) {
  if (buf[start] !== 0x7b || buf[start + 1] !== 0x22 || buf[start + 3] !== 0x22) return false;
  const kind = buf[start + 2];
  if (kind !== MEASURED && kind !== BARRIER) return false;
  let i = start + 5; // past {"s":
  let value = 0;
  const fields = [0, 0, 0];
  for (let field = 0; field < 3; field += 1) {
    value = 0;
    let c = buf[i];
    if (c < 0x30 || c > 0x39) return false;
    while (c >= 0x30 && c <= 0x39) {
      value = value * 10 + (c - 0x30);
      i += 1;
      c = buf[i];
    }
    fields[field] = value;
    i += 5; // past ,"f": or ,"t":
  }
  out.measured = kind === MEASURED;
  [out.seq, out.from, out.sentUs] = fields;
  return true;
}

module.exports = { makePayload, readPayload, nowUs };
