// The error codes a Mount answers with in `error.code`. The driver counts failed mounts by this code (its
// `total_node_publish_error` metric) and shows it in the pod's events, so each cause a user can fix has its own code.
// Messages go to the injector's log only; they name the pod, job and key, never a value.
import { ServerCallError } from '../common/node-sessions.js';

export const MountErrorCode = {
  /** The SecretProviderClass parameters are invalid: bad key or file name, bad mode, missing job, bad JSON. */
  BadParameters: 'BadParameters',
  /**
   * The SecretProviderClass has no `owner` parameter (the job owner's address). Every job login names its owner, so
   * that another owner's grant for the same job id can neither deny nor replace the job's secrets.
   */
  OwnerMissing: 'OwnerMissing',
  /** The pod's volume attributes set a parameter the SecretProviderClass does not (or differently): refused. */
  ParameterOverride: 'ParameterOverride',
  /** The SecretProviderClass could not be read from the Kubernetes API to check the attributes against it. */
  SecretProviderClassUnavailable: 'SecretProviderClassUnavailable',
  /** `endpoint` is not one of the secrets servers this injector is allowed to log in to. */
  EndpointNotAllowed: 'EndpointNotAllowed',
  /** No node key: neither `nodeKeySecret` in the nodePublishSecretRef nor a node keypair file, or it is malformed. */
  NodeKeyInvalid: 'NodeKeyInvalid',
  /** The secrets server did not answer (connection refused, DNS, timeout). */
  ServerUnreachable: 'ServerUnreachable',
  /** The server refused the node's signed login (clock skew over the server's limit, wrong key format). */
  LoginRefused: 'LoginRefused',
  /** The server refused the node's job token: the owner grants this node nothing for that job (or no longer). */
  JobNotGranted: 'JobNotGranted',
  /** The owner's grant for the job exists but leaves out one of the requested keys. */
  KeyNotGranted: 'KeyNotGranted',
  /** A requested key does not exist under the job owner's secrets. */
  KeyNotFound: 'KeyNotFound',
  /** The files would exceed the driver's 1 MiB limit. */
  ContentTooLarge: 'ContentTooLarge',
  /** The server answered with an error the injector does not expect (a 5xx, a 4xx of another kind). */
  ServerError: 'ServerError',
} as const;

export type MountErrorCode = (typeof MountErrorCode)[keyof typeof MountErrorCode];

export class MountError extends Error {
  override name = 'MountError';
  constructor(readonly code: MountErrorCode, message: string, readonly key?: string) {
    super(message);
  }
}

/** Maps a failed server call to the code a user can act on; the step that failed names the cause. */
export function toMountError(error: unknown, what: string, key?: string): MountError {
  if (error instanceof MountError) return error;
  if (!(error instanceof ServerCallError)) {
    return new MountError(MountErrorCode.ServerError, `${what}: ${error instanceof Error ? error.message : String(error)}`, key);
  }
  // The server's messages name addresses, jobs and keys, never a value.
  if (error.unreachable) return new MountError(MountErrorCode.ServerUnreachable, error.message, key);
  const message = `${what}: ${error.message}`;
  if (error.status === 403) {
    const code = error.call === 'login' ? MountErrorCode.LoginRefused
      : error.call === 'job_token' ? MountErrorCode.JobNotGranted : MountErrorCode.KeyNotGranted;
    return new MountError(code, message, key);
  }
  if (error.status === 404) return new MountError(MountErrorCode.KeyNotFound, message, key);
  return new MountError(MountErrorCode.ServerError, `${message} (HTTP ${error.status ?? '?'})`, key);
}
