// Test certificates made with the openssl command: a CA of its own per test, and server certificates it signs for
// 127.0.0.1 and localhost. Nothing here is trusted outside the test that made it.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface PemFiles {
  certFile: string;
  keyFile: string;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A self-signed CA named `name`, written into `dir` as <name>.crt and <name>.key. */
export function makeCa(dir: string, name: string): PemFiles {
  const files = { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`) };
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout', files.keyFile, '-out', files.certFile]);
  return files;
}

/** A server certificate for 127.0.0.1 and localhost signed by `ca`, written into `dir` as <name>.crt and <name>.key. */
export function issueServerCert(ca: PemFiles, dir: string, name: string): PemFiles {
  const files = { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`) };
  const request = join(dir, `${name}.csr`);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`,
    '-keyout', files.keyFile, '-out', request]);
  const extensions = join(dir, `${name}.ext`);
  writeFileSync(extensions, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  openssl(['x509', '-req', '-in', request, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-days', '2',
    '-extfile', extensions, '-out', files.certFile]);
  return files;
}
