// The NosanaSecretBinding API (secrets.nosana.io/v1alpha1): resource types, the condition type, its reasons, and the
// labels and annotations the operator puts on what it manages. The schema itself lives in
// crds/nosanasecretbindings.yaml; keep the two in step. No behaviour here: the operator, the tests and the chart's
// docs all read this one module.

export const GROUP = 'secrets.nosana.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'NosanaSecretBinding';
export const PLURAL = 'nosanasecretbindings';
export const CRD_NAME = `${PLURAL}.${GROUP}`;

/**
 * The finalizer operators of chart 0.1.0 held on every binding until they had deleted its env Secret. This
 * operator holds none (garbage collection deletes the env Secret through its ownerReference), and removes it from
 * bindings that still carry it: a finalizer outlives an uninstalled operator, and kept bindings Terminating for good.
 */
export const LEGACY_FINALIZER = `${GROUP}/cleanup`;

/** Labels on every env Secret the operator keeps. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'nosana-secrets-operator';
export const BINDING_LABEL = `${GROUP}/binding`;
/** Set or change it on a binding (any value, e.g. a date) to re-read the values at once, as ESO's force-sync. */
export const FORCE_SYNC_ANNOTATION = `${GROUP}/force-sync`;
/** On the pod template of a workload the operator restarted (rolloutOnChange): when, as `kubectl rollout restart`. */
export const RESTARTED_AT_ANNOTATION = `${GROUP}/restartedAt`;
/** Annotations on the env Secret (a job id may be longer than a label value may be). */
export const JOB_ANNOTATION = `${GROUP}/job`;
export const OWNER_ANNOTATION = `${GROUP}/owner`;

export const DEFAULT_CREDENTIALS_KEY = 'keypair.json';
export const DEFAULT_REFRESH_INTERVAL = '15m';

/** The one condition type: whether the binding's secrets are materialised and current. */
export const CONDITION_READY = 'Ready';

/** Reasons of the Ready condition (also the reasons of the Events the operator emits). */
export const Reason = {
  /** Every key was read; the env Secret holds the current values. */
  SecretsResolved: 'SecretsResolved',
  /** A key does not exist under the owner's address. */
  SecretNotFound: 'SecretNotFound',
  /** The node has no grant for this job, a key is not granted, or the grant belongs to another owner. */
  AccessDenied: 'AccessDenied',
  /** The secrets server could not be reached or answered with a server error. */
  ServerUnreachable: 'ServerUnreachable',
  /** spec.endpoint names a server the operator is not allowed to sign in to: nothing was sent there. */
  EndpointNotAllowed: 'EndpointNotAllowed',
  /** The operator may not manage Secrets in the binding's namespace: that namespace was not opted in (RBAC). */
  SecretsNotPermitted: 'SecretsNotPermitted',
  /** The spec is not usable (a rule the schema cannot express). */
  InvalidSpec: 'InvalidSpec',
  /** The node credentials Secret, or its key, does not exist. */
  CredentialsNotFound: 'CredentialsNotFound',
  /** The node credentials are not a Solana keypair. */
  InvalidCredentials: 'InvalidCredentials',
  /** A Secret of the target name exists and is not this binding's. */
  SecretConflict: 'SecretConflict',
  /** spec.jobFinished is true: the env Secret was deleted. */
  JobFinished: 'JobFinished',
  /** The first reconcile has not finished yet. */
  Pending: 'Pending',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

export interface SecretEntry {
  key: string;
  env: string;
}

/** spec.dataFrom: every granted key under `prefix`, as a variable named by the rest of the key (see envNameFor). */
export interface DataFrom {
  prefix: string;
  /** Put before each name, e.g. `DB_`. */
  envPrefix?: string;
  /** Upper-case the names (`db/password` under `db/` becomes `PASSWORD`). */
  upperCase?: boolean;
}

/** The variable name of `key` taken by a dataFrom entry: the rest after the prefix, `/`, `.` and `-` as `_`. */
export function envNameFor(key: string, from: DataFrom): string {
  const rest = key.slice(from.prefix.length).replace(/[^A-Za-z0-9_]/g, '_');
  const name = (from.envPrefix ?? '') + (from.upperCase ? rest.toUpperCase() : rest);
  return /^[0-9]/.test(name) ? `_${name}` : name;
}

/** What the env Secret looks like besides its data: its type, and labels and annotations of its own. */
export interface EnvSecretTemplate {
  type?: string;
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
}

export interface NosanaSecretBindingSpec {
  job: string;
  owner: string;
  endpoint?: string;
  secretName?: string;
  /** Keys by name; spec.dataFrom adds keys by prefix. At least one of the two. */
  secrets?: SecretEntry[];
  dataFrom?: DataFrom[];
  template?: EnvSecretTemplate;
  /** Restart the Deployments, StatefulSets and DaemonSets that use the env Secret when its values change. */
  rolloutOnChange?: boolean;
  nodeCredentialsRef: { name: string; key?: string };
  /** A Go duration (`30s`, `15m`, `1h30m`). */
  refreshInterval?: string;
  ttlAfterFinished?: string;
  jobFinished?: boolean;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface ResolvedKey {
  key: string;
  version: number;
}

export interface NosanaSecretBindingStatus {
  observedGeneration?: number;
  secretName?: string;
  lastSyncTime?: string;
  finishedAt?: string;
  keys?: ResolvedKey[];
  conditions?: Condition[];
}

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  finalizers?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface NosanaSecretBinding {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta;
  spec: NosanaSecretBindingSpec;
  status?: NosanaSecretBindingStatus;
}

export function readyCondition(binding: Pick<NosanaSecretBinding, 'status'>): Condition | undefined {
  return binding.status?.conditions?.find((c) => c.type === CONDITION_READY);
}

/** The env Secret's name: spec.secretName, or the binding's own name. */
export function envSecretName(binding: NosanaSecretBinding): string {
  return binding.spec.secretName ?? binding.metadata.name;
}
