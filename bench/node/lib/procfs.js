'use strict';
// The server's own figures from /proc, read by the generator at the edges of a measured phase,
// so that the window is exactly the phase. CPU of the generator itself and of the whole machine
// is read too: "other processes" = machine - server - generator - aux shows a disturbed run.
const fs = require('fs');

const CLOCK_TICKS_PER_S = 100; // USER_HZ: 100 on every Linux architecture this runs on

// utime + stime of a process (all its threads), in seconds.
function processCpuS(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces: split after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S; // fields 14, 15 of proc(5)
}

function rssKiB(pid) {
  const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]);
}

const CPUS = require('os').cpus().length;

// CPU time every process on the machine used (all cores), in seconds: all CPU time since boot
// less the idle time (/proc/uptime). Idle time is accounted from the moments CPUs go idle and
// wake up, so this stays accurate over short slices, unlike /proc/stat's per-tick busy counters.
function machineBusyS() {
  const [uptimeS, idleS] = fs.readFileSync('/proc/uptime', 'utf8').split(' ').map(Number);
  return uptimeS * CPUS - idleS;
}

function ownCpuS() {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

const SLICE_MS = 500; // /proc counts in 10 ms units: over 500 ms a slice is right to within a few %

// Other processes' CPU between two samples, in % of one core.
function othersPct(from, to) {
  const wallS = to.wallS - from.wallS;
  const ownS = to.serverS - from.serverS + (to.auxS - from.auxS) + (to.generatorS - from.generatorS);
  return wallS > 0 ? (100 * Math.max(0, to.machineS - from.machineS - ownS)) / wallS : 0;
}

// CPU figures of a measured phase, from a snapshot at its start to `.end()`. Every SLICE_MS it
// also checks what other processes used in that slice: an average hides a short burst, which
// is enough to move a p99 latency.
class CpuWindow {
  constructor(serverPid, auxPids) {
    this.serverPid = serverPid;
    this.auxPids = auxPids;
    this.start = this.sample();
    this.last = this.start;
    this.othersPeakPct = 0;
    this.timer = setInterval(() => this.slice(), SLICE_MS);
  }

  sample() {
    return {
      wallS: performance.now() / 1000,
      serverS: this.serverPid ? processCpuS(this.serverPid) : 0,
      auxS: this.auxPids.reduce((sum, pid) => sum + processCpuS(pid), 0),
      generatorS: ownCpuS(),
      machineS: machineBusyS(),
    };
  }

  slice() {
    const now = this.sample();
    this.othersPeakPct = Math.max(this.othersPeakPct, othersPct(this.last, now));
    this.last = now;
    return now;
  }

  end() {
    clearInterval(this.timer);
    const stop = this.slice();
    const wallS = stop.wallS - this.start.wallS;
    const serverS = stop.serverS - this.start.serverS;
    const auxS = stop.auxS - this.start.auxS;
    const pct = (s) => (wallS > 0 ? (100 * s) / wallS : 0);
    return {
      wall_s: wallS,
      server_cpu_s: serverS,
      server_busy_pct: pct(serverS),
      aux_cpu_s: auxS,
      aux_busy_pct: pct(auxS),
      generator_busy_pct: pct(stop.generatorS - this.start.generatorS),
      others_busy_pct: othersPct(this.start, stop),
      others_peak_pct: this.othersPeakPct,
    };
  }
}

module.exports = { CpuWindow, rssKiB };
