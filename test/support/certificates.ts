import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Real X.509 certificates for TLS tests, made with the openssl command line (P-256 keys, valid for a day). */
export class TestPki {
  readonly dir = mkdtempSync(join(tmpdir(), 'tollgate-pki-'));
  private serial = 0;

  /** A self-signed CA; returns the paths of its certificate and key. */
  ca(name: string): { cert: string; key: string } {
    const cert = join(this.dir, `${name}.crt`);
    const key = join(this.dir, `${name}.key`);
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${name}`]);
    return { cert, key };
  }

  /**
   * A certificate the CA signs, with subject alternative names as openssl writes them (`DNS:localhost`, `IP:127.0.0.1`,
   * `URI:spiffe://…`), for a server or a client.
   */
  issue(ca: { cert: string; key: string }, name: string, altNames: string[], usage: 'server' | 'client'): { cert: string; key: string } {
    const cert = join(this.dir, `${name}-${++this.serial}.crt`);
    const key = join(this.dir, `${name}-${this.serial}.key`);
    const request = join(this.dir, `${name}-${this.serial}.csr`);
    const extensions = join(this.dir, `${name}-${this.serial}.ext`);
    writeFileSync(extensions, `subjectAltName=${altNames.join(',')}\nextendedKeyUsage=${usage === 'server' ? 'serverAuth' : 'clientAuth'}\n`);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', request, '-subj', `/CN=${name}`]);
    openssl(['x509', '-req', '-in', request, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', String(Date.now() + this.serial), '-out', cert, '-days', '1', '-extfile', extensions]);
    return { cert, key };
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}
