/**
 * Certificates for TLS tests, made with the openssl CLI (`.ci/run` installs it): a CA, and
 * certificates it signs for the names a test gives. Each set lives in its own directory.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface TestCa {
  dir: string;
  /** The CA certificate (PEM file): what a client trusts. */
  caFile: string;
  /** Issues a certificate for `altNames` (e.g. "DNS:localhost,IP:127.0.0.1"); returns its cert and key files. */
  issue(name: string, altNames: string): { certFile: string; keyFile: string };
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A fresh CA in `dir` (created), EC P-256, valid for two days. */
export function makeCa(dir: string, cn = 'noderel test CA'): TestCa {
  fs.mkdirSync(dir, { recursive: true });
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', `/CN=${cn}`], dir);
  return {
    dir,
    caFile: path.join(dir, 'ca.pem'),
    issue(name, altNames) {
      openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
      fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${altNames}\n`);
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`], dir);
      return { certFile: path.join(dir, `${name}.pem`), keyFile: path.join(dir, `${name}.key`) };
    },
  };
}
