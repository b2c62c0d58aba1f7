import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeEnvoy } from './support/envoy.js';
import { startTestApp, type TestApp } from './support/services.js';

/** Bearer JWTs through the Check: a registered OAuth client is billed exactly like an API key. */
describe('Check with OAuth2 / JWT identities', () => {
  const issuer = 'https://auth.petstore.example.com/';
  let service: TestApp;
  let envoy: FakeEnvoy;
  let jwksDir: string | undefined;
  let signing: CryptoKey;
  let stranger: CryptoKey;

  const token = (clientId: string, options: { key?: CryptoKey; expiresIn?: string; audience?: string } = {}) =>
    new SignJWT({ client_id: clientId })
      .setProtectedHeader({ alg: 'ES256', kid: 'main' })
      .setIssuer(issuer)
      .setAudience(options.audience ?? 'petstore-api')
      .setIssuedAt()
      .setExpirationTime(options.expiresIn ?? '5m')
      .sign(options.key ?? signing);
  const bearer = async (jwt: string) => envoy.check({ method: 'GET', path: '/api/v1/analytics', headers: { authorization: `Bearer ${jwt}` } });

  beforeAll(async () => {
    const [main, other] = await Promise.all([generateKeyPair('ES256'), generateKeyPair('ES256')]);
    signing = main.privateKey;
    stranger = other.privateKey;
    jwksDir = mkdtempSync(join(tmpdir(), 'jwks-'));
    const jwksFile = join(jwksDir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(main.publicKey)), kid: 'main', alg: 'ES256' }] }));
    service = await startTestApp({
      mode: 'embedded',
      env: { TOLLGATE_JWT_JWKS_FILE: jwksFile, TOLLGATE_JWT_ISSUER: issuer, TOLLGATE_JWT_AUDIENCE: 'petstore-api', TOLLGATE_JWT_CLOCK_TOLERANCE_S: '0' },
    });
    envoy = new FakeEnvoy(service.grpcAddress);
    await service.admin('POST', '/v1/customers', { id: 'mobile-co', name: 'Mobile Co' });
    const registered = await service.admin('POST', '/v1/oauth-clients', { customer: 'mobile-co', clientId: 'petstore-mobile', plan: 'pro' });
    expect(registered.status).toBe(201);
    await service.app.identities.refresh();
  });
  afterAll(async () => {
    envoy?.close();
    await service?.close();
    if (jwksDir) rmSync(jwksDir, { recursive: true, force: true });
  });

  it('maps a valid token to its customer and plan, like a key', async () => {
    const outcome = await bearer(await token('petstore-mobile'));
    expect(outcome.allowed).toBe(true);
    expect(outcome.upstreamHeaders).toMatchObject({ 'x-tollgate-customer-id': 'mobile-co', 'x-tollgate-plan-id': 'pro' });
    expect(outcome.responseHeaders['ratelimit-limit']).toBe('100');
  });

  it.each([
    ['an expired token', () => token('petstore-mobile', { expiresIn: '-1m' }), 'token_expired'],
    ['a token signed with another key', () => token('petstore-mobile', { key: stranger }), 'token_invalid_signature'],
    ['a token for another audience', () => token('petstore-mobile', { audience: 'billing' }), 'token_invalid_claims'],
  ])('answers 401 with a reason to %s', async (_case, make, code) => {
    const outcome = await bearer(await make());
    expect(outcome.httpStatus).toBe(401);
    expect(outcome.body).toMatchObject({ error: { code } });
  });

  it("never accepts an OAuth client's derived credential as an API key", async () => {
    const attempts: Record<string, string>[] = [{ 'x-api-key': 'oauth-client:petstore-mobile' }, { authorization: 'Bearer oauth-client:petstore-mobile' }];
    for (const headers of attempts) {
      const outcome = await envoy.check({ method: 'GET', path: '/api/v1/pets', headers });
      expect(outcome.httpStatus).toBe(401);
      expect(outcome.body).toMatchObject({ error: { code: 'invalid_key' } });
    }
  });

  it('answers 401 to a valid token of an unregistered client', async () => {
    expect((await bearer(await token('someone-else'))).body).toMatchObject({ error: { code: 'invalid_key' } });
  });

  it('stops a revoked client within a second', async () => {
    const listed = await service.admin('GET', '/v1/keys?customer=mobile-co');
    const client = listed.body.data.find((key: { prefix: string }) => key.prefix === 'oauth-client:petstore-mobile');
    await service.admin('POST', `/v1/keys/${client.id}/revoke`);
    await expect.poll(async () => (await bearer(await token('petstore-mobile'))).httpStatus, { timeout: 1_000, interval: 50 }).toBe(401);
  });

  it('refuses to register the same client twice', async () => {
    const again = await service.admin('POST', '/v1/oauth-clients', { customer: 'mobile-co', clientId: 'petstore-mobile', plan: 'pro' });
    expect(again.status).toBe(409);
  });

  it('still accepts API keys', async () => {
    await service.admin('POST', '/v1/customers', { id: 'key-co', name: 'Key Co' });
    const { body } = await service.admin('POST', '/v1/keys', { customer: 'key-co', plan: 'pro' });
    await service.app.identities.refresh();
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', headers: { authorization: `Bearer ${body.key}` } })).allowed).toBe(true);
  });
});
