// Which secret keys a Nosana job document grants. The document is the job definition (at JobAccount.ipfsJob) for a
// running job, or the job result (at JobAccount.ipfsResult) for a finished one.
//
// What the Nosana conventions mean here (from the Nosana secrets docs, the Nosana Platform's secret pages and the
// upstream server):
// - `state["nosana/secrets"]: [key, ...]` is the list upstream grants, and the one the Nosana Platform writes into
//   the job definition it pins, and the node into its result (`["<job>/result"]`). Every entry is granted.
// - The simple form `secrets: [key, ...]` at the top of the job JSON (the docs' first job example) is granted too.
// - `global.` prefix: the Platform stores a repository's secrets as `<repository id>_<KEY>` and global secrets
//   without a prefix; a pipeline names a global secret as `global.<KEY>`. So an entry `global.KEY` grants the
//   project's unprefixed key `KEY`, and any other entry is taken as the exact stored key (already carrying its
//   `<repository id>_` prefix when the Platform wrote it: this server never adds one, it cannot know the id).
// - `environment` entries of `type: nosana/secret` (with `endpoint` and `value`) in a pipeline tell the node which
//   key to fetch from which server; they grant nothing by themselves here, because their endpoint may be another
//   server and the Platform already lists their keys in `state["nosana/secrets"]`. A job must list what it grants.
// Every key must pass the server's name rules; a document that breaks these rules is refused whole (422).
import { keyProblem } from '../../../common/names.js';
import { HttpError } from '../../errors.js';

export const SECRETS_STATE_KEY = 'nosana/secrets';
export const GLOBAL_PREFIX = 'global.';

/** A document the job points to that is not what a job document must be: the job's fault, not the network's. */
export const invalidJobDocument = (message: string) => new HttpError(422, 'InvalidJobDocumentError', message);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function keyList(value: unknown, field: string, where: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((entry) => typeof entry === 'string')) {
    throw invalidJobDocument(`${where}: ${field} must be an array of secret key names`);
  }
  return value as string[];
}

/** The stored key an entry names: `global.KEY` is the unprefixed `KEY`. */
export function storedKey(entry: string): string {
  return entry.startsWith(GLOBAL_PREFIX) ? entry.slice(GLOBAL_PREFIX.length) : entry;
}

/** The keys `document` grants, sorted and without duplicates; empty when it lists none. `where` names it in errors. */
export function grantedKeys(document: unknown, where: string): string[] {
  if (!isObject(document)) throw invalidJobDocument(`${where} is not a JSON object`);
  if (document.state !== undefined && document.state !== null && !isObject(document.state)) {
    throw invalidJobDocument(`${where}: state must be an object`);
  }
  const entries = [
    ...keyList(isObject(document.state) ? document.state[SECRETS_STATE_KEY] : undefined, `state["${SECRETS_STATE_KEY}"]`, where),
    ...keyList(document.secrets, 'secrets', where),
  ];
  const keys = entries.map((entry) => {
    const key = storedKey(entry);
    const problem = keyProblem(key);
    if (problem) throw invalidJobDocument(`${where} lists the secret ${JSON.stringify(entry.slice(0, 300))}, whose key ${problem}`);
    return key;
  });
  return [...new Set(keys)].sort();
}
