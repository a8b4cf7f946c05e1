// The signed login every client performs (CLI, injector, operator): sign a login message with an ed25519 (Solana)
// key. Two forms of message:
//   nosana_secret_<unix seconds>              unbound: upstream's form, valid on any server that accepts it
//   nosana_secret_<audience>_<unix seconds>   bound to one server, named by its audience (GET /v1/info)
// An audience never holds "_" and a timestamp is digits only, so the two forms can never be the same text, and a
// bound message names exactly one audience. Keypair files use the Solana CLI format: 64 secret-key bytes as JSON.
import { readFile, writeFile } from 'node:fs/promises';
import bs58 from 'bs58';
import nacl from 'tweetnacl';

export const LOGIN_MESSAGE_PREFIX = 'nosana_secret_';

export interface Keypair {
  address: string;
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** What a server's audience may hold: no "_", so the bound message splits one way only. */
export const AUDIENCE_PATTERN = '^[A-Za-z0-9.:-]{1,128}$';
export const AUDIENCE_RULE = '1 to 128 letters, digits, ".", ":" or "-"';

export interface LoginRequest {
  address: string;
  signature: string;
  timestamp: number;
  job?: string;
  /** With `job`: the owner whose grant to use. Our clients always name it, so no other key's grant can stand in. */
  owner?: string;
  /** Present when the message signed is the bound form for this audience. */
  audience?: string;
}

/** The message to sign: bound to `audience` when given, else the unbound form upstream servers expect. */
export function loginMessage(timestamp: number, audience?: string): string {
  return audience === undefined ? `${LOGIN_MESSAGE_PREFIX}${timestamp}` : `${LOGIN_MESSAGE_PREFIX}${audience}_${timestamp}`;
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

export function signLogin(keypair: Keypair, options: { job?: string; owner?: string; timestamp?: number; audience?: string } = {}): LoginRequest {
  const timestamp = options.timestamp ?? nextTimestamp(keypair.address);
  const signature = nacl.sign.detached(new TextEncoder().encode(loginMessage(timestamp, options.audience)), keypair.secretKey);
  const request: LoginRequest = { address: keypair.address, signature: bs58.encode(signature), timestamp };
  if (options.job !== undefined) request.job = options.job;
  if (options.owner !== undefined) request.owner = options.owner;
  if (options.audience !== undefined) request.audience = options.audience;
  return request;
}
