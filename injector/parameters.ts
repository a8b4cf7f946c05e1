// What a Mount asks for, parsed and validated from the driver's request: the job and its owner, the endpoint, the objects (key,
// file name, mode) and where the node key comes from. Every problem is a MountError naming the parameter and the fix.
import { parse as parseYaml } from 'yaml';
import { decodeAddress, jobProblem, keyProblem } from '../common/names.js';
import { MountError, MountErrorCode } from './errors.js';

/** The SecretProviderClass parameters this provider reads. */
export const PARAMETER_NAMES = ['endpoint', 'job', 'owner', 'objects', 'nodeKeySecret'] as const;

/** Keys the kubelet (and, for tokens, the driver) set last in the merged attributes; a pod cannot forge them. */
export const POD_INFO_PREFIX = 'csi.storage.k8s.io/';
export const POD_NAME = 'csi.storage.k8s.io/pod.name';
export const POD_NAMESPACE = 'csi.storage.k8s.io/pod.namespace';
export const POD_UID = 'csi.storage.k8s.io/pod.uid';
/** The pod's own volume attribute that names the SecretProviderClass (in the pod's namespace). */
export const SECRET_PROVIDER_CLASS = 'secretProviderClass';

/** The driver limits a volume to 1 MiB (syncing to a Kubernetes Secret fails above it). */
export const MAX_TOTAL_BYTES = 1024 * 1024;
const MAX_OBJECTS = 100;

export interface RequestedObject {
  key: string;
  /** Relative path of the file in the mount; the key when not given. */
  fileName: string;
  /** Permission bits, 0 to 0o777. */
  mode: number;
}

export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
}

export interface MountParameters {
  pod: PodRef;
  secretProviderClass: string;
  /** As written in the attributes; undefined means the injector's default endpoint. */
  endpoint?: string;
  job: string;
  /** The job owner's address: only that owner's grant counts, never another owner's for the same job id. */
  owner: string;
  objects: readonly RequestedObject[];
  /** The key inside the nodePublishSecretRef data that holds the node keypair; undefined means the node-wide key. */
  nodeKeySecret?: string;
}

const bad = (message: string) => new MountError(MountErrorCode.BadParameters, message);

export function parseJsonObject(text: string, what: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = text === '' ? {} : JSON.parse(text);
  } catch {
    throw bad(`${what} is not JSON`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw bad(`${what} is not a JSON object`);
  for (const value of Object.values(parsed)) {
    if (typeof value !== 'string') throw bad(`${what} must map names to strings`);
  }
  return parsed as Record<string, string>;
}

/** The default file mode: the driver sends it as a decimal string ("420" is 0644). */
export function parsePermission(permission: string): number {
  if (!/^[0-9]{1,3}$/.test(permission) || Number(permission) > 0o777) {
    throw bad(`permission ${JSON.stringify(permission.slice(0, 16))} is not a decimal file mode from 0 to 511`);
  }
  return Number(permission);
}

/** A mode in `objects` is an octal string ("0400", "644"): YAML reads a bare 0400 as decimal 400, a common trap. */
function parseMode(value: unknown, where: string): number {
  if (typeof value !== 'string' || !/^0?[0-7]{3}$/.test(value)) {
    throw bad(`${where}.mode must be an octal string such as "0400" (quote it, so YAML keeps it octal)`);
  }
  return parseInt(value, 8);
}

// Rotation polls send the same class again and again: parse each distinct `objects` text once.
const parsedObjects = new Map<string, readonly RequestedObject[]>();
const PARSED_OBJECTS_LIMIT = 1000;

export function parseObjects(text: string | undefined, defaultMode: number): readonly RequestedObject[] {
  const cacheKey = `${defaultMode}\0${text}`;
  const cached = parsedObjects.get(cacheKey);
  if (cached) return cached;
  const objects = Object.freeze(parseObjectsText(text, defaultMode).map((o) => Object.freeze(o)));
  if (parsedObjects.size >= PARSED_OBJECTS_LIMIT) parsedObjects.clear();
  parsedObjects.set(cacheKey, objects);
  return objects;
}

function parseObjectsText(text: string | undefined, defaultMode: number): RequestedObject[] {
  if (text === undefined || text.trim() === '') {
    throw bad('parameter "objects" is missing: list the keys to mount, e.g. objects: "- key: openai/api-key"');
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch {
    throw bad('parameter "objects" is not valid YAML (or JSON): write a list of {key, fileName?, mode?}');
  }
  if (!Array.isArray(parsed) || parsed.length === 0) throw bad('parameter "objects" must be a non-empty list of {key, fileName?, mode?}');
  if (parsed.length > MAX_OBJECTS) throw bad(`parameter "objects" lists ${parsed.length} entries: at most ${MAX_OBJECTS}`);
  const keys = new Set<string>();
  const fileNames = new Set<string>();
  return parsed.map((entry: unknown, index): RequestedObject => {
    const where = `objects[${index}]`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw bad(`${where} must be an object {key, fileName?, mode?}`);
    const { key, fileName, mode, ...rest } = entry as Record<string, unknown>;
    const unknown = Object.keys(rest)[0];
    if (unknown !== undefined) throw bad(`${where} has unknown field ${JSON.stringify(unknown)}: use key, fileName and mode`);
    if (typeof key !== 'string') throw bad(`${where}.key must be a string`);
    const keyIssue = keyProblem(key);
    if (keyIssue) throw bad(`${where}.key ${JSON.stringify(key.slice(0, 64))} ${keyIssue}`);
    if (fileName !== undefined && typeof fileName !== 'string') throw bad(`${where}.fileName must be a string`);
    const path = fileName ?? key;
    // File names follow the key rule: relative, "/" between non-empty segments, no "." or ".." segment.
    const fileIssue = keyProblem(path);
    if (fileIssue) throw bad(`${where}.fileName ${JSON.stringify(path.slice(0, 64))} ${fileIssue}`);
    if (keys.has(key)) throw bad(`${where}.key ${key} is listed twice`);
    if (fileNames.has(path)) throw bad(`${where}.fileName ${path} is used twice`);
    keys.add(key);
    fileNames.add(path);
    return { key, fileName: path, mode: mode === undefined ? defaultMode : parseMode(mode, where) };
  });
}

/** The pod the kubelet reported; the driver's CSIDriver object sets podInfoOnMount, so these are always there. */
export function podOf(attributes: Record<string, string>): PodRef {
  const pod = { namespace: attributes[POD_NAMESPACE] ?? '', name: attributes[POD_NAME] ?? '', uid: attributes[POD_UID] ?? '' };
  if (pod.namespace === '' || pod.name === '') {
    throw bad(`attributes lack ${POD_NAMESPACE} or ${POD_NAME}: the CSIDriver object must set podInfoOnMount: true`);
  }
  return pod;
}

export function parseMountParameters(attributes: Record<string, string>, defaultMode: number): MountParameters {
  const pod = podOf(attributes);
  const secretProviderClass = attributes[SECRET_PROVIDER_CLASS] ?? '';
  if (secretProviderClass === '') throw bad(`attributes lack ${SECRET_PROVIDER_CLASS}: set it in the pod's volumeAttributes`);
  const job = attributes.job;
  if (job === undefined || job === '') throw bad('parameter "job" is missing: set the job id in the SecretProviderClass parameters');
  const jobIssue = jobProblem(job);
  if (jobIssue) throw bad(`parameter "job" ${JSON.stringify(job.slice(0, 64))} ${jobIssue}`);
  const owner = attributes.owner;
  if (owner === undefined || owner === '') {
    throw new MountError(MountErrorCode.OwnerMissing,
      'parameter "owner" is missing: set the job owner\'s address in the SecretProviderClass parameters (owner: <base58 address>), so that no other owner\'s grant for this job id can deny or replace its secrets');
  }
  if (decodeAddress(owner) === undefined) throw bad(`parameter "owner" ${JSON.stringify(owner.slice(0, 64))} is not a Solana address (base58, 32 bytes)`);
  const nodeKeySecret = attributes.nodeKeySecret === '' ? undefined : attributes.nodeKeySecret;
  const endpoint = attributes.endpoint === '' ? undefined : attributes.endpoint;
  return { pod, secretProviderClass, endpoint, job, owner, objects: parseObjects(attributes.objects, defaultMode), nodeKeySecret };
}
