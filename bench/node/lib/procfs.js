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

// CPU time every process on the machine used (all cores), in seconds.
function machineBusyS() {
  const first = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  // cpu  user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
  const [user, nice, system, , , irq, softirq, steal] = first.split(/\s+/).slice(1, 9).map(Number);
  return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS_PER_S;
}

function ownCpuS() {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

// A snapshot at the start of a phase; `.end()` gives the CPU figures of the phase.
class CpuWindow {
  constructor(serverPid, auxPids) {
    this.serverPid = serverPid;
    this.auxPids = auxPids;
    this.start = this.sample();
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

  end() {
    const stop = this.sample();
    const wallS = stop.wallS - this.start.wallS;
    const serverS = stop.serverS - this.start.serverS;
    const auxS = stop.auxS - this.start.auxS;
    const generatorS = stop.generatorS - this.start.generatorS;
    const othersS = Math.max(0, stop.machineS - this.start.machineS - serverS - auxS - generatorS);
    const pct = (s) => (wallS > 0 ? (100 * s) / wallS : 0);
    return {
      wall_s: wallS,
      server_cpu_s: serverS,
      server_busy_pct: pct(serverS),
      aux_cpu_s: auxS,
      aux_busy_pct: pct(auxS),
      generator_busy_pct: pct(generatorS),
      others_busy_pct: pct(othersS),
    };
  }
}

module.exports = { CpuWindow, rssKiB };
