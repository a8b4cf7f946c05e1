// The operator's work queue: a key waits once however often it is added, is never handed to two workers at once,
// and comes back after a growing backoff when it fails. Pure logic: no server needed.
import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../operator/api/duration.js';
import { WorkQueue } from '../../operator/queue.js';

describe('the work queue', () => {
  it('hands out a key added many times only once', async () => {
    const queue = new WorkQueue();
    for (let i = 0; i < 5; i++) queue.add('ns/a');
    queue.add('ns/b');
    expect(queue.depth).toBe(2);
    expect(await queue.get()).toBe('ns/a');
    expect(await queue.get()).toBe('ns/b');
    expect(queue.depth).toBe(0);
  });

  it('does not hand a key to a second worker while the first still works on it, and queues it again after', async () => {
    const queue = new WorkQueue();
    queue.add('ns/a');
    const key = await queue.get();
    queue.add('ns/a');
    expect(queue.depth).toBe(0);
    const second = queue.get();
    queue.done(key!);
    expect(await second).toBe('ns/a');
  });

  it('retries a failing key after a backoff that doubles, and starts over once it succeeds', () => {
    const queue = new WorkQueue({ backoffBaseMs: 100, backoffMaxMs: 1000 });
    const delays = Array.from({ length: 6 }, () => queue.addRateLimited('ns/a'));
    expect(delays[0]).toBeGreaterThanOrEqual(80);
    expect(delays[0]).toBeLessThanOrEqual(120);
    expect(delays[3]).toBeGreaterThanOrEqual(640);
    expect(delays[5]).toBeLessThanOrEqual(1200);
    queue.forget('ns/a');
    expect(queue.addRateLimited('ns/a')).toBeLessThanOrEqual(120);
    queue.shutDown();
  });

  it('keeps the earliest of two scheduled runs of a key', async () => {
    const queue = new WorkQueue();
    queue.addAfter('ns/a', 60_000);
    queue.addAfter('ns/a', 20);
    const started = Date.now();
    expect(await queue.get()).toBe('ns/a');
    expect(Date.now() - started).toBeLessThan(10_000);
    queue.shutDown();
  });

  it('answers undefined to waiting workers once shut down', async () => {
    const queue = new WorkQueue();
    const waiting = queue.get();
    queue.shutDown();
    expect(await waiting).toBeUndefined();
  });
});

describe('spec durations', () => {
  it('read Go durations as the CRD accepts them and name a bad one', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('250ms')).toBe(250);
    expect(() => parseDuration('10 minutes')).toThrow('"10 minutes" is not a duration: write e.g. 30s, 15m or 1h30m');
  });
});
