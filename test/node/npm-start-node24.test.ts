// `npm start` on Node 24, where `npm install` compiles better-sqlite3 against that Node's own headers (or downloads a
// prebuilt made so): with the headers of 24.19 or later, better-sqlite3 12 aborts the process when the garbage
// collector frees a statement or a connection (nodejs/node#65446), and the server did at start-up. The image avoids
// it with older headers; a user's install cannot, so the server must never leave one to the collector. Node 24 is the
// image's (the Dockerfile's NODE_VERSION, fetched by the image build); the module is compiled here with its headers.
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import autocannon from 'autocannon';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageArchive } from './node.js';

const root = join(import.meta.dirname, '../..');
const nodeVersion = /^ARG NODE_VERSION=(\S+)$/m.exec(readFileSync(join(root, 'Dockerfile'), 'utf8'))?.[1] ?? '';
const imageCache = process.env.NOSANA_IMAGE_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'nosana-secrets-image');
const node24 = join(imageCache, `node-v${nodeVersion}`, 'bin', 'node');
let app: string;

/** better-sqlite3 compiled against the runtime's own headers, as `npm install` does on that Node (cached). */
function sqliteWithOwnHeaders(): string {
  const { version } = JSON.parse(readFileSync(join(root, 'node_modules/better-sqlite3/package.json'), 'utf8')) as { version: string };
  const cached = join(imageCache, `better-sqlite3-${version}-node-v${nodeVersion}.node`);
  if (existsSync(cached)) return cached;
  const build = mkdtempSync(join(tmpdir(), 'sqlite-own-headers-'));
  cpSync(join(root, 'node_modules/better-sqlite3'), join(build, 'better-sqlite3'), { recursive: true });
  // npm's own node-gyp, as npm install runs it.
  const npm = realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
  const nodeGyp = join(dirname(npm), '../node_modules/node-gyp/bin/node-gyp.js');
  const nodeDir = join(imageCache, `node-v${nodeVersion}`);
  execFileSync(node24, [nodeGyp, 'rebuild', '--release', `--nodedir=${nodeDir}`], {
    cwd: join(build, 'better-sqlite3'), env: { ...process.env, JOBS: '2', npm_config_nodedir: nodeDir }, stdio: 'ignore',
  });
  cpSync(join(build, 'better-sqlite3/build/Release/better_sqlite3.node'), cached);
  rmSync(build, { recursive: true, force: true });
  return cached;
}

beforeAll(() => {
  imageArchive(); // fetches the image's Node.js into the cache
  expect(execFileSync(node24, ['--version'], { encoding: 'utf8' })).toMatch(/^v24\./);
  // This checkout as installed on Node 24: the same packages, but better-sqlite3 built for it.
  app = mkdtempSync(join(tmpdir(), 'npm-start-node24-'));
  // Copies, not links: Node resolves a module from its real path, and dist/ must find the module built here.
  for (const entry of ['dist', 'package.json', 'proto']) cpSync(join(root, entry), join(app, entry), { recursive: true });
  mkdirSync(join(app, 'node_modules'));
  for (const entry of readdirSync(join(root, 'node_modules'))) {
    if (entry !== 'better-sqlite3') symlinkSync(join(root, 'node_modules', entry), join(app, 'node_modules', entry));
  }
  cpSync(join(root, 'node_modules/better-sqlite3'), join(app, 'node_modules/better-sqlite3'), { recursive: true, filter: (src) => !src.includes('/build/') });
  cpSync(sqliteWithOwnHeaders(), join(app, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'));
}, 900_000);

afterAll(() => rmSync(app, { recursive: true, force: true }));

describe('npm start on Node 24 with better-sqlite3 built for it', () => {
  it('serves two workers under load, through garbage collections, and stops cleanly on SIGTERM', async () => {
    const cwd = mkdtempSync(join(app, 'run-'));
    const server = spawn(node24, [join(app, 'dist/cli/main.js'), 'server'], {
      cwd, env: { ...process.env, PORT: '0', HOST: '127.0.0.1', SERVER_WORKERS: '2', LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    server.stdout.on('data', (d: Buffer) => { output += d; });
    server.stderr.on('data', (d: Buffer) => { output += d; });
    const exited = new Promise<number | null>((done) => server.once('exit', (code) => done(code)));
    const url = await new Promise<string>((done, fail) => {
      const timer = setInterval(() => {
        const match = /open (http:\/\/\S+)/.exec(output);
        if (match) { clearInterval(timer); done(match[1]!); }
        if (server.exitCode !== null) { clearInterval(timer); fail(new Error(`server exited at start-up (${server.exitCode}): ${output}`)); }
      }, 50);
    });
    // Enough requests for many young-generation collections in every worker; /readyz pings SQLite each time.
    for (const options of [{ url: `${url}/v1/info` }, { url: `${url}/readyz` }]) {
      const result = await autocannon({ ...options, connections: 8, duration: 4 });
      expect(result.non2xx + result.errors).toBe(0);
    }
    server.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output).not.toContain('Assertion failed');
    expect(output).not.toMatch(/worker exited/);
  }, 120_000);
});
