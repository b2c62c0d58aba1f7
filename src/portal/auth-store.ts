/**
 * Portal sign-in: sessions and operator-issued sign-in links. Both are random 32-byte secrets given to the browser
 * once; only their SHA-256 is kept (sign-in-records.ts), so reading the records opens nothing.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../kernel/index.js';
import { notFound } from '../kernel/index.js';
import type { PortalSignInRecords } from './sign-in-records.js';

export const newSecret = () => randomBytes(32).toString('base64url');
const digest = (secret: string) => createHash('sha256').update(secret).digest('hex');
/** Secrets are base64url of 32 bytes; anything else is refused before a query. */
const wellFormed = (secret: string) => /^[A-Za-z0-9_-]{43}$/.test(secret);

/**
 * The CSRF token of the forms a browser holding `secret` (its session id, or before sign-in its CSRF cookie) may
 * post: a MAC of that secret, which a page on another site can neither read nor compute.
 */
export function csrfToken(secret: string): string {
  return createHmac('sha256', secret).update('tollgate portal csrf').digest('base64url');
}

export function csrfTokenMatches(secret: string, token: string | undefined): boolean {
  if (!token) return false;
  const expected = Buffer.from(csrfToken(secret));
  const given = Buffer.from(token);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/** Portal sign-in: sessions and single-use links as random secrets, kept by their hashes in `PortalSignInRecords`. */
export class PortalAuthStore {
  constructor(
    private readonly records: PortalSignInRecords,
    private readonly clock: Clock,
  ) {}

  /** A new session for the customer; returns its id, for the cookie. Expired sessions and links are swept here. */
  async createSession(customerId: string, ttlMs: number): Promise<string> {
    const now = this.clock.now();
    await this.records.sweepExpired(new Date(now));
    const id = newSecret();
    await this.records.addSession({ hash: digest(id), customerId, createdAt: new Date(now), expiresAt: new Date(now + ttlMs) });
    return id;
  }

  /** The customer of an unexpired session, if the customer may still sign in (not erased). */
  async sessionCustomer(id: string): Promise<string | undefined> {
    return wellFormed(id) ? this.records.sessionCustomer(digest(id), new Date(this.clock.now())) : undefined;
  }

  async endSession(id: string): Promise<void> {
    if (wellFormed(id)) await this.records.deleteSession(digest(id));
  }

  /** A single-use sign-in link's token for the customer, valid for `ttlMs`. */
  async issueLink(customerId: string, ttlMs: number): Promise<{ token: string; expiresAt: number }> {
    if (!(await this.records.customerExists(customerId))) throw notFound('customer', customerId);
    const token = newSecret();
    const now = this.clock.now();
    await this.records.addLink({ hash: digest(token), customerId, createdAt: new Date(now), expiresAt: new Date(now + ttlMs) });
    return { token, expiresAt: now + ttlMs };
  }

  /** Whether a link can still be used, without using it (link previews and mail scanners only GET). */
  async linkUsable(token: string): Promise<boolean> {
    return wellFormed(token) && this.records.linkUsable(digest(token), new Date(this.clock.now()));
  }

  /** Uses the link, once: returns its customer, or undefined if it is unknown, used or expired. */
  async consumeLink(token: string): Promise<string | undefined> {
    return wellFormed(token) ? this.records.useLink(digest(token), new Date(this.clock.now())) : undefined;
  }

  /** The customer whose email the identity proxy vouches for; undefined when none or several have it. */
  customerByEmail(email: string): Promise<string | undefined> {
    return this.records.customerByEmail(email);
  }

  emailInUse(email: string): Promise<boolean> {
    return this.records.emailInUse(email);
  }
}
