// `test/env down node` leaves the host as it found it: no mount, cgroup, network namespace, iptables chain, link,
// directory or sysctl of the node remains. Compared with the snapshot `up` took before it changed anything. This
// takes the node down: test/run-node runs it last.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');
const nodeState = process.env.NS_TEST_NODE_STATE;

/** Lines that name something of the node: its state dir, pod cgroups, netns, chains, bridge, veths, paths, sysctls. */
function nodeLines(snapshot: string): string[] {
  return snapshot.split('\n').filter((line) =>
    (nodeState !== undefined && line.includes(nodeState)) || /kubepods|^netns cni-|^chain6? \S+ (KUBE-|CNI-|NSTEST-)|^link (nstest|veth)|^path |^sysctl /.test(line));
}

describe('test/env down node', () => {
  it('removes every mount, cgroup, netns, chain, link and directory of the node and restores the sysctls', () => {
    if (!nodeState) throw new Error('NS_TEST_NODE_STATE is not set: run the node tests with test/run-node');
    const before = readFileSync(join(nodeState, 'host-before.txt'), 'utf8');
    const running = execFileSync('bash', [join(root, 'test/env'), 'host-snapshot'], { encoding: 'utf8' });
    // The node really changed the host (or this test could not fail).
    expect(nodeLines(running)).not.toEqual(nodeLines(before));
    execFileSync('bash', [join(root, 'test/env'), 'down', 'node'], { stdio: 'inherit', timeout: 300_000 });
    const after = execFileSync('bash', [join(root, 'test/env'), 'host-snapshot'], { encoding: 'utf8' });
    expect(nodeLines(after)).toEqual(nodeLines(before));
  }, 360_000);
});
