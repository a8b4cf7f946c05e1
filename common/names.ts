// Name rules shared by the server, the CLI, the operator and the injector, so a name accepted in one place is
// accepted everywhere. Keys may use `/` as a namespace separator (as in `<job>/result`); no segment may be `.` or
// `..`, because keys become file names in pods.
import bs58 from 'bs58';

export const KEY_MAX_LENGTH = 256;
export const JOB_MAX_LENGTH = 128;
export const KEY_PATTERN = '^(?!.*(^|/)\\.{1,2}(/|$))[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$';
export const JOB_PATTERN = '^[A-Za-z0-9._-]+$';
export const ADDRESS_PATTERN = '^[1-9A-HJ-NP-Za-km-z]{32,44}$';
export const KEY_RULE = 'letters, digits, ".", "_", "-", with "/" between non-empty segments, no "." or ".." segment';
export const JOB_RULE = 'letters, digits, ".", "_", "-"';

const keyRegExp = new RegExp(KEY_PATTERN);
const jobRegExp = new RegExp(JOB_PATTERN);

/** Returns why `key` is not a valid secret name, or undefined when it is. */
export function keyProblem(key: string): string | undefined {
  if (key.length === 0) return 'must not be empty';
  if (key.length > KEY_MAX_LENGTH) return `must be at most ${KEY_MAX_LENGTH} characters`;
  if (!keyRegExp.test(key)) return `may contain only ${KEY_RULE}`;
  return undefined;
}

export function jobProblem(job: string): string | undefined {
  if (job.length === 0) return 'must not be empty';
  if (job.length > JOB_MAX_LENGTH) return `must be at most ${JOB_MAX_LENGTH} characters`;
  if (!jobRegExp.test(job)) return `may contain only ${JOB_RULE}`;
  return undefined;
}

/** Decodes a base58 Solana address to its 32-byte ed25519 public key, or undefined when it is not one. */
export function decodeAddress(address: string): Uint8Array | undefined {
  try {
    const bytes = bs58.decode(address);
    return bytes.length === 32 ? bytes : undefined;
  } catch {
    return undefined;
  }
}
