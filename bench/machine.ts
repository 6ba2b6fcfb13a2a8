import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { arch, cpus, loadavg, platform, release, totalmem } from "node:os";

export interface MachineInfo {
  date: string;
  node: string;
  cpuModel: string;
  cores: number;
  memory: string;
  os: string;
  loadAverage: string;
  commit: string;
}

function cpuModel(): string {
  const fromOs = cpus()[0]?.model;
  if (fromOs) return fromOs.trim();
  try {
    return /model name\s*:\s*(.+)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? "unknown";
  } catch {
    return "unknown";
  }
}

function gitCommit(cwd: string): string {
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "src"], {
      cwd,
      encoding: "utf8",
    }).trim();
    return dirty ? `${head} (src/ has uncommitted changes)` : head;
  } catch {
    return "unknown";
  }
}

/** What the numbers were measured on: without it a benchmark result means nothing. */
export function machineInfo(repoRoot: string): MachineInfo {
  return {
    date: new Date().toISOString(),
    node: process.version,
    cpuModel: cpuModel(),
    cores: cpus().length,
    memory: `${(totalmem() / 1_073_741_824).toFixed(1)} GiB`,
    os: `${platform()} ${release()} ${arch()}`,
    loadAverage: loadavg()
      .map((l) => l.toFixed(2))
      .join(" / "),
    commit: gitCommit(repoRoot),
  };
}

/** Resident set size of a process, from /proc/<pid>/status (Linux), in bytes. */
export function rssOf(pid: number): number {
  try {
    const kb = /VmRSS:\s*(\d+)\s*kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb === undefined ? Number.NaN : Number(kb) * 1024;
  } catch {
    return Number.NaN;
  }
}

/** CPU time (user + system) a process used so far, from /proc/<pid>/stat, in milliseconds. */
export function cpuMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start at ") ".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1000) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

/** USER_HZ: 100 on every mainstream Linux build. */
const CLOCK_TICKS = 100;
