// The gRPC side: loads proto/v1alpha1/service.proto at run time and serves CSIDriverProvider on a unix socket that
// only the injector's user may open (0600), replacing a stale socket left by a crash and refusing to steal the socket
// of an injector that still runs.
import { existsSync, readFileSync } from 'node:fs';
import { chmod, lstat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { MountRequest, MountResponse } from './mount.js';

export const RUNTIME_NAME = 'nosana';
export const SOCKET_NAME = 'nosana.sock';

/** The package root, found from this file both in the sources (injector/) and in the build (dist/injector/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'proto', 'v1alpha1', 'service.proto'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find proto/v1alpha1/service.proto above the injector: reinstall the package');
    dir = parent;
  }
  return dir;
}

/** The installed package (or the checkout): proto/ and package.json are there, whether this runs from dist/ or not. */
export const PACKAGE_ROOT = packageRoot();
export const PROTO_PATH = join(PACKAGE_ROOT, 'proto', 'v1alpha1', 'service.proto');
export const RUNTIME_VERSION = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** keepCase keeps snake_case field names as in the .proto; defaults fill absent strings and lists like Go does. */
export function loadProviderService(): grpc.ServiceDefinition {
  const definition = protoLoader.loadSync(PROTO_PATH, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const v1alpha1 = grpc.loadPackageDefinition(definition).v1alpha1 as grpc.GrpcObject;
  return (v1alpha1.CSIDriverProvider as grpc.ServiceClientConstructor).service;
}

export interface ProviderHandlers {
  mount(request: MountRequest): Promise<MountResponse>;
}

/** Removes a socket left by a process that is gone; refuses when another one still answers on it. */
async function clearStaleSocket(path: string): Promise<void> {
  let stat;
  try {
    stat = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (!stat.isSocket()) throw new Error(`${path} exists and is not a socket: remove it or choose another socket directory`);
  const alive = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => { probe.destroy(); resolve(true); });
    probe.once('error', () => resolve(false));
  });
  if (alive) throw new Error(`another process serves ${path}: stop the other injector first`);
  await unlink(path);
}

export interface ProviderServer {
  socketPath: string;
  close(): Promise<void>;
}

export async function serveProvider(socketDir: string, handlers: ProviderHandlers): Promise<ProviderServer> {
  const socketPath = join(socketDir, SOCKET_NAME);
  await clearStaleSocket(socketPath);
  const server = new grpc.Server();
  server.addService(loadProviderService(), {
    Version: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      callback(null, { version: 'v1alpha1', runtime_name: RUNTIME_NAME, runtime_version: RUNTIME_VERSION });
    },
    Mount: (call: grpc.ServerUnaryCall<MountRequest, MountResponse>, callback: grpc.sendUnaryData<MountResponse>) => {
      handlers.mount(call.request).then((response) => callback(null, response), (error: Error) => {
        // mount() answers every expected failure itself; this is a bug, reported without request content.
        callback({ code: grpc.status.INTERNAL, details: `injector error: ${error.name}` });
      });
    },
  });
  // The socket is created by bind() with the process umask: narrow it so the socket is 0600 from its first instant,
  // not only after the chmod below (which stays, for file systems that ignore the umask on sockets).
  const previousUmask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix:${socketPath}`, grpc.ServerCredentials.createInsecure(), (error) => (error ? reject(error) : resolve()));
    });
  } finally {
    process.umask(previousUmask);
  }
  await chmod(socketPath, 0o600);

  return {
    socketPath,
    async close() {
      await new Promise<void>((resolve) => {
        // In-flight mounts finish; a stuck one is cut after 5 s so shutdown cannot hang the pod's termination.
        // tryShutdown's callback waits for every connection to end, and a client that connected without finishing
        // the HTTP/2 handshake never ends one, even after forceShutdown: so resolve once forced, not on its callback.
        const force = setTimeout(() => { server.forceShutdown(); resolve(); }, 5_000);
        server.tryShutdown(() => { clearTimeout(force); resolve(); });
      });
      await unlink(socketPath).catch((error: NodeJS.ErrnoException) => { if (error.code !== 'ENOENT') throw error; });
    },
  };
}
