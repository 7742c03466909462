/** Peak resident memory of this process, in MB. */
import { readFileSync } from 'node:fs';

/**
 * Linux keeps getrusage's ru_maxrss across execve, so a child spawned by a large parent reports the parent's
 * peak; VmHWM in /proc/self/status belongs to this process image alone. Elsewhere ru_maxrss is used.
 */
export function peakRssMB(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}
