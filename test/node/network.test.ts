// The test node's pod network: cluster DNS and services work, and nothing a pod sends leaves the test world (the
// NSTEST-EGRESS chain drops it). The probe address is TEST-NET-2 (198.51.100.0/24, never routed anywhere), so even
// a broken rule could not reach a real host.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubectl } from './node.js';

const namespace = `net-${Math.random().toString(36).slice(2, 8)}`;

/** Runs a busybox pod to completion and returns its log. */
function runPod(name: string, script: string): string {
  kubectl(['-n', namespace, 'run', name, '--image=busybox:1.36', '--restart=Never', '--command', '--', 'sh', '-c', script]);
  kubectl(['-n', namespace, 'wait', `pod/${name}`, '--for=jsonpath={.status.phase}=Succeeded', '--timeout=90s']);
  return kubectl(['-n', namespace, 'logs', name]);
}

function dropCounter(): number {
  const rules = execFileSync('iptables', ['-L', 'NSTEST-EGRESS', '-v', '-n', '-x'], { encoding: 'utf8' });
  const drop = rules.split('\n').find((l) => /\sDROP\s/.test(l));
  return Number(drop?.trim().split(/\s+/)[0] ?? Number.NaN);
}

beforeAll(() => {
  kubectl(['create', 'namespace', namespace]);
});
afterAll(() => {
  kubectl(['delete', 'namespace', namespace, '--wait=false']);
});

describe('the pod network of the test node', () => {
  it('resolves service names through cluster DNS and reaches the API server through its service', () => {
    const log = runPod('dns', 'nslookup kubernetes.default.svc.cluster.local && nc -w 5 kubernetes.default.svc 443 </dev/null && echo api-reached');
    expect(log).toContain('Address: 10.0.0.1');
    expect(log).toContain('api-reached');
  }, 120_000);

  it('drops what a pod sends to an address outside the pod network, the services and the host', () => {
    const before = dropCounter();
    const log = runPod('egress', 'if nc -w 3 198.51.100.1 80 </dev/null 2>/dev/null; then echo reached; else echo blocked; fi');
    expect(log.trim()).toBe('blocked');
    expect(dropCounter()).toBeGreaterThan(before);
  }, 120_000);
});
