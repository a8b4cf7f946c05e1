// HTTPS for the API: the certificate and key come from files (TLS_CERT_FILE, TLS_KEY_FILE), and are read again every
// TLS_RELOAD_SECONDS. When they changed and still make a valid pair, new connections get the new certificate at once
// (Node's setSecureContext); connections already open keep theirs. A half-written or mismatched pair is logged and
// the certificate in use stays, so a rotation (cert-manager, a Secret update) never needs a restart or takes the
// server down.
import { readFileSync } from 'node:fs';
import { createSecureContext, type Server as TlsServer } from 'node:tls';
import { ConfigError } from '../common/config.js';
import type { Logger } from '../common/log.js';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  reloadSeconds: number;
}

export interface TlsPair {
  cert: Buffer;
  key: Buffer;
}

/** Reads the pair and checks that the key belongs to the certificate; throws a ConfigError naming the files. */
export function readTlsPair(files: TlsFiles): TlsPair {
  const pair = readTlsFiles(files);
  checkTlsPair(files, pair);
  return pair;
}

function readTlsFiles(files: TlsFiles): TlsPair {
  try {
    return { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) };
  } catch (error) {
    throw new ConfigError(`cannot read TLS_CERT_FILE/TLS_KEY_FILE: ${(error as Error).message}`);
  }
}

function checkTlsPair(files: TlsFiles, pair: TlsPair): void {
  try {
    createSecureContext(pair);
  } catch (error) {
    throw new ConfigError(`TLS_CERT_FILE ${files.certFile} and TLS_KEY_FILE ${files.keyFile} are not a PEM certificate and its key: ${(error as Error).message}`);
  }
}

/** Re-reads the files on a timer and swaps the certificate of `server` when they change; returns the stop function. */
export function reloadTlsOnChange(server: TlsServer, files: TlsFiles, first: TlsPair, log: Logger): () => void {
  let current = first;
  let lastProblem: string | undefined; // logged once, not on every check while it lasts
  const timer = setInterval(() => {
    let next: TlsPair;
    try {
      next = readTlsFiles(files);
      // Unchanged files (every check but a rotation's) are not parsed again.
      if (next.cert.equals(current.cert) && next.key.equals(current.key)) {
        lastProblem = undefined;
        return;
      }
      checkTlsPair(files, next);
    } catch (error) {
      const problem = (error as Error).message;
      if (problem !== lastProblem) log.warn({ err: problem }, 'TLS files changed but do not load: keeping the certificate in use');
      lastProblem = problem;
      return;
    }
    lastProblem = undefined;
    server.setSecureContext(next);
    current = next;
    log.info({ certFile: files.certFile }, 'TLS certificate reloaded');
  }, files.reloadSeconds * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
