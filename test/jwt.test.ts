import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JwtSettings } from '../src/config/config.js';
import { JwtVerifier, looksLikeJwt } from '../src/identity/jwt.js';

/** Keys and tokens are generated here; the JWKS is served from a file and from a local HTTP server. */

const issuer = 'https://auth.petstore.example.com/';
const audience = 'petstore-api';
const now = Date.UTC(2026, 10, 23, 12);

let signing: CryptoKey;
let stranger: CryptoKey;
let jwks: { keys: JWK[] };
let jwksServer: Server;
let jwksUrl: string;
let jwksRequests = 0;

async function token(claims: Record<string, unknown>, options: { key?: CryptoKey; kid?: string; exp?: number | null; nbf?: number; iss?: string; aud?: string } = {}) {
  let jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: options.kid ?? 'k1' })
    .setIssuer(options.iss ?? issuer)
    .setAudience(options.aud ?? audience)
    .setIssuedAt(Math.floor(now / 1000));
  if (options.exp !== null) jwt = jwt.setExpirationTime(options.exp ?? Math.floor(now / 1000) + 300);
  if (options.nbf) jwt = jwt.setNotBefore(options.nbf);
  return jwt.sign(options.key ?? signing);
}

beforeAll(async () => {
  const [mine, other, strangers] = await Promise.all([generateKeyPair('ES256'), generateKeyPair('ES256'), generateKeyPair('ES256')]);
  signing = mine.privateKey;
  stranger = strangers.privateKey;
  jwks = {
    keys: [
      { ...(await exportJWK(mine.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' },
      { ...(await exportJWK(other.publicKey)), kid: 'k2', alg: 'ES256' },
    ],
  };
  jwksServer = createServer((_request, response) => {
    jwksRequests++;
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(jwksServer.address() as { port: number }).port}/.well-known/jwks.json`;
});
afterAll(() => new Promise<void>((resolve) => (jwksServer ? jwksServer.close(() => resolve()) : resolve())));

const settings = (jwksSource: JwtSettings['jwks']): JwtSettings => ({ jwks: jwksSource, issuer, audience, claim: 'client_id', clockToleranceSeconds: 5 });

describe.each(['file', 'url'] as const)('JWT verification with a JWKS %s', (source) => {
  let verifier: JwtVerifier;
  let jwksDir: string | undefined;
  beforeAll(async () => {
    if (source === 'file') {
      jwksDir = mkdtempSync(join(tmpdir(), 'jwks-'));
      const file = join(jwksDir, 'jwks.json');
      writeFileSync(file, JSON.stringify(jwks));
      verifier = await JwtVerifier.create(settings({ file }), () => now);
    } else {
      verifier = await JwtVerifier.create(settings({ url: jwksUrl }), () => now);
    }
  });
  afterAll(() => {
    if (jwksDir) rmSync(jwksDir, { recursive: true, force: true });
  });

  it('accepts a valid token and names its client', async () => {
    const jwt = await token({ client_id: 'petstore-mobile' });
    expect(looksLikeJwt(jwt)).toBe(true);
    expect(await verifier.verify(jwt)).toEqual({ ok: true, clientId: 'petstore-mobile', expiresAt: (Math.floor(now / 1000) + 300) * 1000 });
  });

  it.each([
    ['an expired token', () => token({ client_id: 'c' }, { exp: Math.floor(now / 1000) - 60 }), 'token_expired'],
    ['a token not valid yet', () => token({ client_id: 'c' }, { nbf: Math.floor(now / 1000) + 600 }), 'token_not_yet_valid'],
    ['a token signed by another key', () => token({ client_id: 'c' }, { key: stranger }), 'token_invalid_signature'],
    ['a token for another audience', () => token({ client_id: 'c' }, { aud: 'billing-api' }), 'token_invalid_claims'],
    ['a token from another issuer', () => token({ client_id: 'c' }, { iss: 'https://evil.example.com/' }), 'token_invalid_claims'],
    ['a token without an expiry, which would be good forever', () => token({ client_id: 'c' }, { exp: null }), 'token_invalid_claims'],
    ['a token without the client claim', () => token({ sub: 'c' }), 'token_missing_client'],
    ['garbage', async () => 'aaa.bbb.ccc', 'token_malformed'],
  ])('rejects %s', async (_case, make, failure) => {
    expect(await verifier.verify(await make())).toMatchObject({ ok: false, failure });
  });

  it('rejects a token whose signature was tampered with', async () => {
    const jwt = await token({ client_id: 'c' });
    const [header, payload] = jwt.split('.');
    const forgedPayload = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), client_id: 'admin' })).toString('base64url');
    expect(await verifier.verify(`${header}.${forgedPayload}.${jwt.split('.')[2]}`)).toMatchObject({ ok: false, failure: 'token_invalid_signature' });
  });
});

describe('JWKS over HTTP', () => {
  it('fetches the key set once and serves later verifications from cache', async () => {
    const verifier = await JwtVerifier.create(settings({ url: jwksUrl }), () => now);
    const before = jwksRequests;
    for (let i = 0; i < 5; i++) expect((await verifier.verify(await token({ client_id: `c${i}` }))).ok).toBe(true);
    expect(jwksRequests - before).toBe(1);
  });

  it('reports a JWKS endpoint answering an error as unavailable, not as a bad token', async () => {
    const failing = createServer((_request, response) => response.writeHead(502).end('bad gateway'));
    await new Promise<void>((resolve) => failing.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(failing.address() as { port: number }).port}/jwks.json`;
      const verifier = await JwtVerifier.create(settings({ url }), () => now);
      expect(await verifier.verify(await token({ client_id: 'c' }))).toMatchObject({ ok: false, failure: 'jwks_unavailable' });
    } finally {
      await new Promise<void>((resolve) => failing.close(() => resolve()));
    }
  });

  it('reports an unreachable JWKS as such, not as a bad token', async () => {
    const verifier = await JwtVerifier.create(settings({ url: 'http://127.0.0.1:1/jwks.json' }), () => now);
    expect(await verifier.verify(await token({ client_id: 'c' }))).toMatchObject({ ok: false, failure: 'jwks_unavailable' });
  });
});
