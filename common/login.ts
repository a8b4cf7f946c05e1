// The signed login every client performs (CLI, injector, operator): sign `nosana_secret_<unix seconds>` with an
// ed25519 (Solana) key. Keypair files use the Solana CLI format: a JSON array of the 64 secret-key bytes.
import { readFile, writeFile } from 'node:fs/promises';
import bs58 from 'bs58';
import nacl from 'tweetnacl';

export const LOGIN_MESSAGE_PREFIX = 'nosana_secret_';

export interface Keypair {
  address: string;
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

export interface LoginRequest {
  address: string;
  signature: string;
  timestamp: number;
  job?: string;
}

export function loginMessage(timestamp: number): string {
  return `${LOGIN_MESSAGE_PREFIX}${timestamp}`;
}

export function generateKeypair(): Keypair {
  return keypairFromSecretKey(nacl.sign.keyPair().secretKey);
}

export function keypairFromSecretKey(secretKey: Uint8Array): Keypair {
  if (secretKey.length !== 64) throw new Error(`a Solana secret key has 64 bytes, got ${secretKey.length}`);
  const pair = nacl.sign.keyPair.fromSecretKey(secretKey);
  return { address: bs58.encode(pair.publicKey), publicKey: pair.publicKey, secretKey: pair.secretKey };
}

/** Parses the content of a Solana keypair file (`[12,34,...]`, 64 numbers). */
export function parseKeypairFile(text: string, source = 'keypair file'): Keypair {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${source} is not JSON: expected a JSON array of 64 numbers, as solana-keygen writes`);
  }
  const valid = Array.isArray(parsed) && parsed.length === 64 &&
    parsed.every((n) => Number.isInteger(n) && n >= 0 && n <= 255);
  if (!valid) throw new Error(`${source} must be a JSON array of 64 numbers from 0 to 255, as solana-keygen writes`);
  return keypairFromSecretKey(Uint8Array.from(parsed as number[]));
}

export async function readKeypairFile(path: string): Promise<Keypair> {
  return parseKeypairFile(await readFile(path, 'utf8'), path);
}

export function keypairFileContent(keypair: Keypair): string {
  return JSON.stringify(Array.from(keypair.secretKey));
}

export async function writeKeypairFile(path: string, keypair: Keypair): Promise<void> {
  await writeFile(path, keypairFileContent(keypair), { mode: 0o600, flag: 'wx' });
}

// ed25519 signatures are deterministic: two logins by one key in the same second would carry the same signature, and
// the server refuses the second as a replay. So within a process each key signs a later second than the last one.
const lastTimestamp = new Map<string, number>();

function nextTimestamp(address: string): number {
  const timestamp = Math.max(Math.floor(Date.now() / 1000), (lastTimestamp.get(address) ?? 0) + 1);
  lastTimestamp.set(address, timestamp);
  return timestamp;
}

export function signLogin(keypair: Keypair, options: { job?: string; timestamp?: number } = {}): LoginRequest {
  const timestamp = options.timestamp ?? nextTimestamp(keypair.address);
  const signature = nacl.sign.detached(new TextEncoder().encode(loginMessage(timestamp)), keypair.secretKey);
  const request: LoginRequest = { address: keypair.address, signature: bs58.encode(signature), timestamp };
  if (options.job !== undefined) request.job = options.job;
  return request;
}
