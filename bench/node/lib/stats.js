'use strict';
// What the receivers saw: every delivery counted per (receiver, sender, seq), so that losses and
// duplicates are both visible, and every latency kept for exact percentiles.

class Latencies {
  constructor() {
    this.values = new Float64Array(1 << 16);
    this.count = 0;
  }

  add(ms) {
    if (this.count === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.count] = ms;
    this.count += 1;
  }

  // Nearest-rank percentiles, in milliseconds.
  summary() {
    const sorted = this.values.slice(0, this.count).sort();
    const rank = (q) => (this.count ? sorted[Math.min(this.count - 1, Math.max(0, Math.ceil(q * this.count) - 1))] : null);
    return { count: this.count, p50_ms: rank(0.5), p90_ms: rank(0.9), p99_ms: rank(0.99), max_ms: rank(1) };
  }
}

// The sequence numbers one receiver has had from each sender.
class Ledger {
  constructor() {
    this.seen = new Map(); // sender -> Uint8Array indexed by seq
  }

  // True the first time (sender, seq) arrives, false for a duplicate.
  record(sender, seq) {
    let flags = this.seen.get(sender);
    if (flags === undefined || seq >= flags.length) {
      const grown = new Uint8Array(Math.max(64, 2 * (seq + 1)));
      if (flags !== undefined) grown.set(flags);
      flags = grown;
      this.seen.set(sender, flags);
    }
    if (flags[seq]) return false;
    flags[seq] = 1;
    return true;
  }
}

// Totals over all receivers of a measured phase.
class Deliveries {
  constructor() {
    this.unique = 0;
    this.duplicates = 0;
    this.lastAtMs = 0;
    this.latencies = new Latencies();
  }

  // Counts one measured delivery; true if it was new to this receiver.
  count(ledger, sender, seq, latencyMs, nowMs) {
    this.lastAtMs = nowMs;
    if (!ledger.record(sender, seq)) {
      this.duplicates += 1;
      return false;
    }
    this.unique += 1;
    this.latencies.add(latencyMs);
    return true;
  }
}

// Errors of any kind (error replies, unexpected closes, failed connects): a count and the first few.
class Problems {
  constructor() {
    this.count = 0;
    this.samples = [];
  }

  add(text) {
    this.count += 1;
    if (this.samples.length < 5) this.samples.push(text);
  }

  summary() {
    return { count: this.count, samples: this.samples };
  }
}

module.exports = { Deliveries, Ledger, Problems };
