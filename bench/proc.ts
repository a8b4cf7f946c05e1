// What the benchmarks read of other processes from /proc (Linux): their CPU time, their memory, their children.
import { existsSync, readdirSync, readFileSync } from 'node:fs';

/** A process and, recursively, its children (a server's cluster workers). */
export function processTree(pid: number): number[] {
  const children = `/proc/${pid}/task/${pid}/children`;
  const direct = existsSync(children) ? readFileSync(children, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number) : [];
  return [pid, ...direct.flatMap(processTree)];
}

export function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

/** CPU seconds (user + system) a process has used; 0 once it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks; 100 per second on Linux
  } catch {
    return 0;
  }
}

/** CPU seconds a process and its children have used. */
export function treeCpuSeconds(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + cpuSeconds(p), 0);
}

/** Pids of this machine's processes whose program name starts with `prefix`. */
export function pidsNamed(prefix: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const program = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')[0]!;
      if (program.split('/').pop()!.startsWith(prefix)) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}
