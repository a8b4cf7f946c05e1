// Runs the built CLI (npm test builds it first) in a process of its own, as a user would, with the given stdin.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

export const CLI = resolve('dist/cli/main.js');

export interface Run { code: number | null; stdout: string; stderr: string }

/** `command` replaces `node dist/cli/main.js`, e.g. with `npx --no-install nosana-secrets`. */
export function runCli(args: string[], options: { cwd: string; env?: Record<string, string>; input?: string; command?: string[] }): Promise<Run> {
  const [file, ...head] = options.command ?? [process.execPath, CLI];
  return new Promise((done, fail) => {
    const child = spawn(file!, [...head, ...args], { cwd: options.cwd, env: { ...process.env, ...options.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d; });
    child.stderr.on('data', (d: Buffer) => { stderr += d; });
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}
