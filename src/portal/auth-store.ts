/**
 * Portal sign-in records in PostgreSQL: sessions and operator-issued sign-in links. Both are random 32-byte secrets
 * given to the browser once; only their SHA-256 is stored, so reading the table opens nothing.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../kernel/index.js';
import { notFound } from '../kernel/index.js';
import type { Db } from '../store/index.js';

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

export class PortalAuthStore {
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
  ) {}

  /** A new session for the customer; returns its id, for the cookie. Expired sessions and links are swept here. */
  async createSession(customerId: string, ttlMs: number): Promise<string> {
    const now = this.clock.now();
    await this.db.query('DELETE FROM portal_sessions WHERE expires_at <= $1', [new Date(now)]);
    await this.db.query('DELETE FROM portal_links WHERE expires_at <= $1', [new Date(now)]);
    const id = newSecret();
    await this.db.query('INSERT INTO portal_sessions (id_hash, customer_id, created_at, expires_at) VALUES ($1, $2, $3, $4)', [
      digest(id),
      customerId,
      new Date(now),
      new Date(now + ttlMs),
    ]);
    return id;
  }

  /** The customer of an unexpired session, if the customer may still sign in (not erased). */
  async sessionCustomer(id: string): Promise<string | undefined> {
    if (!wellFormed(id)) return undefined;
    const [row] = await this.db.query<{ customer_id: string }>(
      `SELECT s.customer_id FROM portal_sessions s JOIN customers c ON c.id = s.customer_id
       WHERE s.id_hash = $1 AND s.expires_at > $2 AND c.status <> 'erased'`,
      [digest(id), new Date(this.clock.now())],
    );
    return row?.customer_id;
  }

  async endSession(id: string): Promise<void> {
    if (wellFormed(id)) await this.db.query('DELETE FROM portal_sessions WHERE id_hash = $1', [digest(id)]);
  }

  /** A single-use sign-in link's token for the customer, valid for `ttlMs`. */
  async issueLink(customerId: string, ttlMs: number): Promise<{ token: string; expiresAt: number }> {
    const [customer] = await this.db.query<{ status: string }>('SELECT status FROM customers WHERE id = $1', [customerId]);
    if (!customer) throw notFound('customer', customerId);
    const token = newSecret();
    const now = this.clock.now();
    await this.db.query('INSERT INTO portal_links (token_hash, customer_id, created_at, expires_at) VALUES ($1, $2, $3, $4)', [
      digest(token),
      customerId,
      new Date(now),
      new Date(now + ttlMs),
    ]);
    return { token, expiresAt: now + ttlMs };
  }

  /** Whether a link can still be used, without using it (link previews and mail scanners only GET). */
  async linkUsable(token: string): Promise<boolean> {
    if (!wellFormed(token)) return false;
    const [row] = await this.db.query('SELECT 1 FROM portal_links WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2', [
      digest(token),
      new Date(this.clock.now()),
    ]);
    return row !== undefined;
  }

  /** Uses the link, once: returns its customer, or undefined if it is unknown, used or expired. */
  async consumeLink(token: string): Promise<string | undefined> {
    if (!wellFormed(token)) return undefined;
    const now = new Date(this.clock.now());
    const [row] = await this.db.query<{ customer_id: string }>(
      'UPDATE portal_links SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING customer_id',
      [digest(token), now],
    );
    return row?.customer_id;
  }

  /** The customer whose email the identity proxy vouches for; undefined when none or several have it. */
  async customerByEmail(email: string): Promise<string | undefined> {
    const rows = await this.db.query<{ id: string }>(`SELECT id FROM customers WHERE lower(email) = lower($1) AND status <> 'erased' LIMIT 2`, [email]);
    return rows.length === 1 ? rows[0]!.id : undefined;
  }

  async emailInUse(email: string): Promise<boolean> {
    const [row] = await this.db.query('SELECT 1 FROM customers WHERE lower(email) = lower($1)', [email]);
    return row !== undefined;
  }
}
