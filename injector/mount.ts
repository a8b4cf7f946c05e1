// One Mount: check the attributes against the SecretProviderClass, pick the node key, get the job token of the class's
// job and owner (cached), read exactly the requested keys, and answer with files and object versions. Failures answer with `error.code` and
// a log line naming the pod, job and key; no value ever reaches a log line, an error or a metric label.
import { hash } from 'node:crypto';
import type { SecretValue } from '../common/client.js';
import { EndpointNotAllowedError, type AllowedEndpoints } from '../common/endpoints.js';
import type { Logger } from '../common/log.js';
import { parseKeypairFile, type Keypair } from '../common/login.js';
import type { NodeSessions } from '../common/node-sessions.js';
import { MountError, MountErrorCode, toMountError } from './errors.js';
import type { InjectorMetrics } from './metrics.js';
import {
  MAX_TOTAL_BYTES, parseJsonObject, parseMountParameters, parsePermission, podOf, type MountParameters,
} from './parameters.js';
import type { SecretProviderClasses } from './secret-provider-class.js';

/** The wire shapes of service.proto (proto-loader with keepCase: field names as in the .proto). */
export interface ObjectVersion { id: string; version: string }
export interface MountRequest {
  attributes: string;
  secrets: string;
  target_path: string;
  permission: string;
  current_object_version: ObjectVersion[];
}
export interface MountFile { path: string; mode: number; contents: Buffer }
export interface MountResponse {
  object_version: ObjectVersion[];
  error?: { code: string };
  files: MountFile[];
}

export interface MountContext {
  sessions: NodeSessions;
  classes: SecretProviderClasses;
  /** Servers the node may log in to; the first is the default when a class sets no `endpoint`. */
  endpoints: AllowedEndpoints;
  /** The node-wide key (NOSANA_NODE_KEYPAIR), used when a class sets no `nodeKeySecret`. */
  nodeKeypair?: Keypair;
  metrics: InjectorMetrics;
  log: Logger;
}

export async function mount(context: MountContext, request: MountRequest): Promise<MountResponse> {
  const { metrics, log } = context;
  const endTimer = metrics.mountDuration.startTimer();
  // Plain fields, not a child logger: a Mount writes one line, and rotation polls make Mounts the hot path.
  const where: { pod?: string; job?: string; owner?: string } = {};
  try {
    const attributes = parseJsonObject(request.attributes, 'attributes');
    const pod = podOf(attributes);
    where.pod = `${pod.namespace}/${pod.name}`;
    where.job = attributes.job;
    where.owner = attributes.owner;
    // First the authority check: a refused override must not even be parsed further.
    await context.classes.check(pod.namespace, attributes);
    const parameters = parseMountParameters(attributes, parsePermission(request.permission));
    const files = await fetchFiles(context, parameters, request.secrets);
    metrics.mounts.inc({ outcome: 'success' });
    // The key count, not the list: the class names the keys, and the server's audit log records every key read.
    log.info({ ...where, keys: files.files.length }, 'mounted');
    return files;
  } catch (error) {
    const failure = error instanceof MountError ? error : new MountError(MountErrorCode.ServerError, error instanceof Error ? error.message : String(error));
    metrics.mounts.inc({ outcome: failure.code });
    log.warn({ ...where, code: failure.code, key: failure.key, err: failure.message }, 'mount refused');
    return { object_version: [], error: { code: failure.code }, files: [] };
  } finally {
    endTimer();
  }
}

async function fetchFiles(context: MountContext, parameters: MountParameters, secretsJson: string): Promise<MountResponse> {
  const endpoint = chosenEndpoint(context.endpoints, parameters.endpoint);
  const keypair = nodeKey(context, parameters, secretsJson);
  const keys = parameters.objects.map((o) => o.key);
  const secrets = await readKeys(context, endpoint, keypair, parameters, keys);

  const files: MountFile[] = [];
  const versions: ObjectVersion[] = [];
  let total = 0;
  for (const object of parameters.objects) {
    const secret = secrets[object.key];
    if (!secret) throw new MountError(MountErrorCode.KeyNotFound, `the server's answer lacks key ${object.key}`, object.key);
    const contents = Buffer.from(secret.value, 'utf8');
    total += contents.length;
    if (total > MAX_TOTAL_BYTES) {
      throw new MountError(MountErrorCode.ContentTooLarge, `the files exceed ${MAX_TOTAL_BYTES} bytes at key ${object.key}: mount fewer keys per volume`, object.key);
    }
    files.push({ path: object.fileName, mode: object.mode, contents });
    versions.push({ id: object.key, version: objectVersion(parameters.job, secret) });
  }
  return { object_version: versions, files };
}

/**
 * The server's version grows by one on every write of a key, but restarts at 1 when a key is deleted and created
 * again; the creation time tells those apart. Hashing job, key, version and creation time gives a version that changes
 * whenever the value can have changed, and reveals nothing about the value.
 */
export function objectVersion(job: string, secret: SecretValue): string {
  // The one-shot hash: a Hash object per key would leave a native handle for every scavenge to clean up.
  const digest = hash('sha256', `${job}\0${secret.key}\0${secret.version}\0${secret.createdAt}`, 'hex');
  return `${secret.version}-${digest.slice(0, 12)}`;
}

function chosenEndpoint(endpoints: AllowedEndpoints, requested: string | undefined): string {
  try {
    return endpoints.choose(requested);
  } catch (error) {
    if (error instanceof EndpointNotAllowedError) throw new MountError(MountErrorCode.EndpointNotAllowed, error.message);
    throw error;
  }
}

function nodeKey(context: MountContext, parameters: MountParameters, secretsJson: string): Keypair {
  if (parameters.nodeKeySecret === undefined) {
    if (context.nodeKeypair) return context.nodeKeypair;
    throw new MountError(MountErrorCode.NodeKeyInvalid,
      'no node key: set NOSANA_NODE_KEYPAIR on the injector, or nodeKeySecret in the class and a nodePublishSecretRef on the volume');
  }
  const secrets = parseJsonObject(secretsJson, 'nodePublishSecretRef data');
  const text = secrets[parameters.nodeKeySecret];
  if (text === undefined) {
    throw new MountError(MountErrorCode.NodeKeyInvalid,
      `the nodePublishSecretRef Secret has no key ${JSON.stringify(parameters.nodeKeySecret)}: add the node keypair under that key or set the volume's nodePublishSecretRef`);
  }
  try {
    return parseKeypairFile(text, `nodePublishSecretRef key ${parameters.nodeKeySecret}`);
  } catch (error) {
    // parseKeypairFile's messages describe the expected shape, never the content.
    throw new MountError(MountErrorCode.NodeKeyInvalid, (error as Error).message);
  }
}

async function readKeys(context: MountContext, endpoint: string, keypair: Keypair, parameters: MountParameters, keys: string[]): Promise<Record<string, SecretValue>> {
  const { job, owner } = parameters;
  try {
    return await context.sessions.readJobSecrets(endpoint, keypair, job, owner, keys);
  } catch (error) {
    throw toMountError(error, `read of job ${job} from owner ${owner}`, keyNamed(error, keys));
  }
}

/** The requested key the server's error message names, so the log line can carry it as a field. */
function keyNamed(error: unknown, keys: string[]): string | undefined {
  const message = error instanceof Error ? error.message : '';
  return keys.find((key) => message.includes(JSON.stringify(key)));
}
