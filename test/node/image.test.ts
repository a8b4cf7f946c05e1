// The image that `npm run image` builds without Docker, against the Dockerfile it must not drift from: same
// user, entrypoint, command, working dir, environment, ports, Node.js version and /app layout. With the test node's
// containerd it is imported and run, as uid 65532.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { imageArchive, ctr } from './node.js';

interface ImageConfig {
  config: { User: string; Entrypoint: string[]; Cmd: string[]; WorkingDir: string; Env: string[]; ExposedPorts: Record<string, object>; Labels: Record<string, string> };
  rootfs: { diff_ids: string[] };
}

const root = join(import.meta.dirname, '../..');
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8').split('\n');
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
/** The lines of the Dockerfile's run stage (after its second FROM). */
const runStage = dockerfile.slice(dockerfile.findIndex((l, i) => l.startsWith('FROM ') && dockerfile.slice(0, i).some((p) => p.startsWith('FROM '))));
const instruction = (name: string): string[] => runStage.filter((l) => l.startsWith(`${name} `)).map((l) => l.slice(name.length + 1).trim());

let dir: string;
let archive: string;
let config: ImageConfig;
/** Every entry of the image's layers: path (without "./") -> "uid/gid mode". */
const entries = new Map<string, string>();

function member(name: string): Buffer {
  return execFileSync('tar', ['-xOf', archive, name], { maxBuffer: 1 << 30 });
}

beforeAll(() => {
  archive = imageArchive();
  dir = mkdtempSync(join(tmpdir(), 'image-test-'));
  const manifest = JSON.parse(member('manifest.json').toString()) as { Config: string; RepoTags: string[]; Layers: string[] }[];
  expect(manifest).toHaveLength(1);
  const [image] = manifest;
  if (!image) throw new Error('empty manifest');
  expect(image.RepoTags).toEqual([`ghcr.io/nosana-ci/nosana-secrets:${version}`]);
  const configBytes = member(image.Config);
  // Names are the sha256 of the content, as `docker save` writes them (containerd checks the diff ids).
  expect(image.Config).toBe(`${createHash('sha256').update(configBytes).digest('hex')}.json`);
  config = JSON.parse(configBytes.toString()) as ImageConfig;
  const layerIds = image.Layers.map((l) => `sha256:${createHash('sha256').update(member(l)).digest('hex')}`);
  expect(image.Layers.map((l) => `sha256:${l.replace(/\.tar$/, '')}`)).toEqual(layerIds);
  expect(config.rootfs.diff_ids).toEqual(layerIds);
  for (const layer of image.Layers) {
    execFileSync('tar', ['-xf', archive, '-C', dir, layer]);
    const listing = execFileSync('tar', ['--numeric-owner', '-tvf', join(dir, layer)], { encoding: 'utf8', maxBuffer: 1 << 30 });
    for (const line of listing.split('\n').filter(Boolean)) {
      const [mode, owner, , , , ...rest] = line.split(/\s+/);
      const path = rest.join(' ').replace(/^\.\//, '').replace(/\/$/, '').split(' -> ')[0] ?? '';
      entries.set(path, `${owner} ${mode}`);
    }
  }
}, 900_000);

describe('the image built without Docker', () => {
  it('runs as the Dockerfile user with its entrypoint, command, working dir, environment and ports', () => {
    expect(config.config.User).toBe(instruction('USER')[0]);
    expect(config.config.User).toBe('65532:65532');
    expect(config.config.Entrypoint).toEqual(JSON.parse(instruction('ENTRYPOINT')[0] ?? 'null'));
    expect(config.config.Cmd).toEqual(JSON.parse(instruction('CMD')[0] ?? 'null'));
    expect(config.config.WorkingDir).toBe(instruction('WORKDIR')[0]);
    for (const env of instruction('ENV')) expect(config.config.Env).toContain(env);
    const ports = instruction('EXPOSE').flatMap((l) => l.split(/\s+/)).map((p) => `${p}/tcp`);
    expect(Object.keys(config.config.ExposedPorts).sort()).toEqual(ports.sort());
  });

  it('carries the Node.js version the Dockerfile builds with, at the path its entrypoint names', () => {
    const nodeVersion = dockerfile.find((l) => l.startsWith('ARG NODE_VERSION='))?.split('=')[1];
    // Node 24 LTS: Node 20 is past its end of life. Its sqlite module is compiled against the headers of 24.x too.
    expect(nodeVersion).toMatch(/^24\.\d+\.\d+$/);
    expect(dockerfile.find((l) => l.startsWith('ARG NODE_ADDON_HEADERS='))).toMatch(/^ARG NODE_ADDON_HEADERS=24\.\d+\.\d+$/);
    expect(dockerfile).toContain('FROM node:${NODE_VERSION}-bookworm-slim AS build');
    expect(instruction('FROM')[0]).toBe(`gcr.io/distroless/nodejs${nodeVersion?.split('.')[0]}-debian12:nonroot`);
    expect(config.config.Labels['io.nosana.image.node-version']).toBe(nodeVersion);
    expect(entries.get(config.config.Entrypoint[0]?.slice(1) ?? '')).toMatch(/^0\/0 -rwxr-xr-x/);
  });

  it('has /app laid out as the Dockerfile copies it, owned by root, with the sqlite module built for its Node', () => {
    const copied = instruction('COPY').map((l) => l.split(/\s+/)[1]?.replace(/^\/app\//, 'app/') ?? '');
    expect(copied.sort()).toEqual(['app/dist', 'app/node_modules', 'app/package.json', 'app/proto']);
    for (const path of copied) expect(entries.has(path), path).toBe(true);
    const appTop = [...entries.keys()].filter((p) => /^app\/[^/]+$/.test(p)).sort();
    expect(appTop).toEqual(copied.sort());
    expect(entries.has(config.config.Entrypoint[1]?.slice(1) ?? '')).toBe(true); // /app/dist/cli/main.js
    expect(entries.has('app/node_modules/better-sqlite3/build/Release/better_sqlite3.node')).toBe(true);
    expect(entries.has('app/node_modules/vitest')).toBe(false); // dev dependencies are pruned
    const notRoot = [...entries].filter(([p, o]) => p.startsWith('app') && !o.startsWith('0/0 '));
    expect(notRoot).toEqual([]);
  });

  it('has the distroless users, a sticky /tmp and the runtime libraries Node.js links', () => {
    const passwd = execFileSync('tar', ['-xOf', join(dir, firstLayer()), './etc/passwd'], { encoding: 'utf8' });
    expect(passwd).toContain('nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin');
    expect(entries.get('home/nonroot')).toMatch(/^65532\/65532 d/);
    expect(entries.get('tmp')).toMatch(/^0\/0 drwxrwxrwt/);
    for (const lib of ['libc.so.6', 'libstdc++.so.6', 'libgcc_s.so.1', 'libm.so.6']) {
      expect([...entries.keys()].some((p) => p.endsWith(`/${lib}`)), lib).toBe(true);
    }
  });

  it('is imported by containerd and runs --help and node as uid 65532', () => {
    ctr(['images', 'import', archive]);
    const ref = `ghcr.io/nosana-ci/nosana-secrets:${version}`;
    const run = (id: string, ...args: string[]): string => {
      try {
        return ctr(['run', '--rm', ref, id, ...args]);
      } finally {
        ctr(['containers', 'rm', id], true);
      }
    };
    const suffix = Math.random().toString(36).slice(2, 8);
    const help = run(`image-test-help-${suffix}`, ...config.config.Entrypoint, '--help');
    expect(help).toMatch(/server/);
    expect(run(`image-test-id-${suffix}`, config.config.Entrypoint[0] ?? '', '-e', 'console.log(process.getuid(), process.getgid(), process.version)'))
      .toBe(`65532 65532 v${config.config.Labels['io.nosana.image.node-version']}\n`);
  });

  it('keeps running when the garbage collector frees sqlite statements (no abort on Node 24)', () => {
    ctr(['images', 'import', archive]);
    const id = `image-test-gc-${Math.random().toString(36).slice(2, 8)}`;
    try {
      const check = readFileSync(join(root, 'image/sqlite-gc-check.cjs'), 'utf8');
      expect(ctr(['run', '--rm', `ghcr.io/nosana-ci/nosana-secrets:${version}`, id, config.config.Entrypoint[0] ?? '', '-e', check])).toBe('survived\n');
    } finally {
      ctr(['containers', 'rm', id], true);
    }
  });
});

function firstLayer(): string {
  return `${config.rootfs.diff_ids[0]?.replace('sha256:', '')}.tar`;
}

process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
