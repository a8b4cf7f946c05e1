// The test node's pod network: cluster DNS and services work, and nothing a pod sends leaves the test world (the
// NSTEST-EGRESS chain drops it). The probe target is a host of the test's own: a listener in a network namespace
// this test creates, on a veth pair, reachable from the host but outside the pod network, the services and the
// host's own addresses. So a broken rule would show as "reached" and still send nothing off this machine.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
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

/**
 * The test's outside host: a network namespace held by a process of its own (not `ip netns add`: on a /run/netns
 * that is not yet a mount point, that bind-mounts it over itself, hiding the netns mounts of running pods, whose
 * sandboxes then cannot be removed: EBUSY). 172.31.254.2/30, host side 172.31.254.1 (no pod or service CIDR).
 */
const OUTSIDE_ADDRESS = '172.31.254.2';
let holder: ChildProcess | undefined;
let listener: ChildProcess | undefined;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

/** Runs a command in the outside host's network namespace. */
function outside(command: string, ...args: string[]): string[] {
  if (holder?.pid === undefined) throw new Error('the outside host is not running');
  return ['nsenter', `--net=/proc/${holder.pid}/ns/net`, '--', command, ...args];
}

function hostReaches(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host, port, timeout: 2_000 }, () => { socket.destroy(); done(true); });
    socket.on('error', () => done(false));
    socket.on('timeout', () => { socket.destroy(); done(false); });
  });
}

function removeOutsideHost(): void {
  listener?.kill();
  holder?.kill();
  try { ip('link', 'delete', 'nsto-h'); } catch { /* already gone */ }
}

beforeAll(async () => {
  kubectl(['create', 'namespace', namespace]);
  removeOutsideHost();
  holder = spawn('unshare', ['--net', '--', 'sleep', 'infinity'], { stdio: 'ignore' });
  const own = execFileSync('readlink', ['/proc/self/ns/net'], { encoding: 'utf8' });
  for (let i = 0; i < 50 && execFileSync('readlink', [`/proc/${holder.pid}/ns/net`], { encoding: 'utf8' }) === own; i++) {
    await new Promise((done) => setTimeout(done, 100)); // until unshare has made its namespace
  }
  const run = (argv: string[]): void => { execFileSync(argv[0]!, argv.slice(1), { stdio: 'pipe' }); };
  ip('link', 'add', 'nsto-h', 'type', 'veth', 'peer', 'name', 'nsto-n');
  ip('link', 'set', 'nsto-n', 'netns', String(holder.pid));
  ip('addr', 'add', '172.31.254.1/30', 'dev', 'nsto-h');
  ip('link', 'set', 'nsto-h', 'up');
  run(outside('ip', 'addr', 'add', `${OUTSIDE_ADDRESS}/30`, 'dev', 'nsto-n'));
  run(outside('ip', 'link', 'set', 'nsto-n', 'up'));
  run(outside('ip', 'link', 'set', 'lo', 'up'));
  run(outside('ip', 'route', 'add', 'default', 'via', '172.31.254.1'));
  const [command, ...args] = outside(process.execPath, '-e',
    `require('node:net').createServer((s) => s.end('outside\\n')).listen(80, '${OUTSIDE_ADDRESS}')`);
  listener = spawn(command!, args, { stdio: 'ignore' });
  // The host reaches it: so a pod that does not is stopped by the rule, not by a missing route.
  const deadline = Date.now() + 10_000;
  while (!(await hostReaches(OUTSIDE_ADDRESS, 80))) {
    if (Date.now() > deadline) throw new Error(`the host cannot reach the test's outside host ${OUTSIDE_ADDRESS}:80`);
    await new Promise((done) => setTimeout(done, 200));
  }
});
afterAll(() => {
  kubectl(['delete', 'namespace', namespace, '--wait=false']);
  removeOutsideHost();
});

describe('the pod network of the test node', () => {
  it('resolves service names through cluster DNS and reaches the API server through its service', () => {
    const log = runPod('dns', 'nslookup kubernetes.default.svc.cluster.local && nc -w 5 kubernetes.default.svc 443 </dev/null && echo api-reached');
    expect(log).toContain('Address: 10.0.0.1');
    expect(log).toContain('api-reached');
  }, 120_000);

  it('drops what a pod sends to an address outside the pod network, the services and the host', () => {
    const before = dropCounter();
    const log = runPod('egress', `if nc -w 3 ${OUTSIDE_ADDRESS} 80 </dev/null 2>/dev/null; then echo reached; else echo blocked; fi`);
    expect(log.trim()).toBe('blocked');
    expect(dropCounter()).toBeGreaterThan(before);
  }, 120_000);
});
