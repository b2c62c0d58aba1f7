import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { JwtSettings } from '../config/index.js';

/**
 * OAuth2 / JWT identities beside API keys: a bearer JWT is verified against the configured JWKS (signature,
 * expiry, issuer, audience), and one of its claims names the OAuth client, which is registered like an API key
 * (see `oauthClientCredential` in identity/keys.ts) so it maps to a customer and plan through the identity cache.
 */

export type JwtFailure = 'token_expired' | 'token_not_yet_valid' | 'token_invalid_signature' | 'token_invalid_claims' | 'token_malformed' | 'token_missing_client' | 'jwks_unavailable';

export type JwtResult = { ok: true; clientId: string; expiresAt: number } | { ok: false; failure: JwtFailure; message: string };

const jwtShape = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
export const looksLikeJwt = (token: string) => jwtShape.test(token);

/** Verifies bearer JWTs, remembering successful verifications until the token expires (bounded). */
export class JwtVerifier {
  private readonly verified = new Map<string, { clientId: string; expiresAt: number }>();

  private constructor(
    private readonly keys: JWTVerifyGetKey,
    private readonly settings: JwtSettings,
    private readonly now: () => number,
    private readonly cacheSize = 10_000,
  ) {}

  static async create(settings: JwtSettings, now: () => number = Date.now): Promise<JwtVerifier> {
    const keys =
      'url' in settings.jwks
        ? createRemoteJWKSet(new URL(settings.jwks.url), { cacheMaxAge: 10 * 60_000, cooldownDuration: 30_000, timeoutDuration: 2_000 })
        : createLocalJWKSet(JSON.parse(await readFile(settings.jwks.file, 'utf8')) as JSONWebKeySet);
    return new JwtVerifier(keys, settings, now);
  }

  async verify(token: string): Promise<JwtResult> {
    const cacheKey = createHash('sha256').update(token).digest('base64url');
    const cached = this.verified.get(cacheKey);
    if (cached && cached.expiresAt > this.now()) return { ok: true, ...cached };
    if (cached) this.verified.delete(cacheKey);
    try {
      const { payload } = await jwtVerify(token, this.keys, {
        ...(this.settings.issuer ? { issuer: this.settings.issuer } : {}),
        ...(this.settings.audience ? { audience: this.settings.audience } : {}),
        clockTolerance: this.settings.clockToleranceSeconds,
        currentDate: new Date(this.now()),
        // A token without an expiry would be good (and cached) forever.
        requiredClaims: ['exp'],
      });
      const clientId = payload[this.settings.claim];
      if (typeof clientId !== 'string' || clientId.length === 0) {
        return { ok: false, failure: 'token_missing_client', message: `The token has no "${this.settings.claim}" claim.` };
      }
      const result = { clientId, expiresAt: payload.exp! * 1000 };
      if (this.verified.size >= this.cacheSize) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(cacheKey, result);
      return { ok: true, ...result };
    } catch (error) {
      return { ok: false, ...describeFailure(error) };
    }
  }
}

function describeFailure(error: unknown): { failure: JwtFailure; message: string } {
  if (error instanceof errors.JWTExpired) return { failure: 'token_expired', message: 'The token has expired.' };
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf') return { failure: 'token_not_yet_valid', message: 'The token is not valid yet.' };
    const problem = error.reason === 'missing' ? `The token has no "${error.claim}" claim.` : `The token's "${error.claim}" claim is not accepted.`;
    return { failure: 'token_invalid_claims', message: problem };
  }
  if (error instanceof errors.JWSSignatureVerificationFailed || error instanceof errors.JWKSNoMatchingKey) {
    return { failure: 'token_invalid_signature', message: 'The token signature does not verify against the configured keys.' };
  }
  // Anything that is not a JOSE error is the JWKS fetch failing (network); jose reports a JWKS endpoint answering
  // non-200 or non-JSON as a plain JOSEError (ERR_JOSE_GENERIC). Neither means the token is bad.
  if (
    !(error instanceof errors.JOSEError) ||
    error instanceof errors.JWKSTimeout ||
    error instanceof errors.JWKSInvalid ||
    error.code === 'ERR_JOSE_GENERIC'
  ) {
    return { failure: 'jwks_unavailable', message: 'The signing keys could not be loaded; retry shortly.' };
  }
  return { failure: 'token_malformed', message: 'The token is not a valid signed JWT.' };
}
