// The processes a benchmark starts (servers, the injector, port-forwards): stopped when it ends, however it ends.
import type { ChildProcess } from 'node:child_process';

const children: ChildProcess[] = [];
const stopChildren = (): void => { for (const child of children) child.kill('SIGTERM'); };
process.once('exit', stopChildren);

/** Registers a started process to be stopped with the benchmark. */
export function stopAtEnd<T extends ChildProcess>(child: T): T {
  children.push(child);
  return child;
}

/** Runs a benchmark's main: a failure prints its message and sets exit code 1; the processes stop either way. */
export function runBenchmark(main: () => Promise<void>): void {
  main().then(stopChildren, (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    stopChildren();
    process.exitCode = 1;
  });
}
