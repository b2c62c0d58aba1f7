import { type Db, withDomainErrors } from '../store/index.js';
import type { PortalSignInRecords, SignInSecretRecord } from './sign-in-records.js';

/** The portal's sign-in records in PostgreSQL or PGlite (tables portal_sessions and portal_links, migration 11). */
export class SqlPortalSignInRecords implements PortalSignInRecords {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = withDomainErrors(db);
  }

  async sweepExpired(now: Date): Promise<void> {
    await this.db.query('DELETE FROM portal_sessions WHERE expires_at <= $1', [now]);
    await this.db.query('DELETE FROM portal_links WHERE expires_at <= $1', [now]);
  }

  async addSession(session: SignInSecretRecord): Promise<void> {
    await this.db.query('INSERT INTO portal_sessions (id_hash, customer_id, created_at, expires_at) VALUES ($1, $2, $3, $4)', [
      session.hash,
      session.customerId,
      session.createdAt,
      session.expiresAt,
    ]);
  }

  async sessionCustomer(hash: string, now: Date): Promise<string | undefined> {
    const [row] = await this.db.query<{ customer_id: string }>(
      `SELECT s.customer_id FROM portal_sessions s JOIN customers c ON c.id = s.customer_id
       WHERE s.id_hash = $1 AND s.expires_at > $2 AND c.status <> 'erased'`,
      [hash, now],
    );
    return row?.customer_id;
  }

  async deleteSession(hash: string): Promise<void> {
    await this.db.query('DELETE FROM portal_sessions WHERE id_hash = $1', [hash]);
  }

  async customerExists(customerId: string): Promise<boolean> {
    const [row] = await this.db.query('SELECT 1 FROM customers WHERE id = $1', [customerId]);
    return row !== undefined;
  }

  async addLink(link: SignInSecretRecord): Promise<void> {
    await this.db.query('INSERT INTO portal_links (token_hash, customer_id, created_at, expires_at) VALUES ($1, $2, $3, $4)', [
      link.hash,
      link.customerId,
      link.createdAt,
      link.expiresAt,
    ]);
  }

  async linkUsable(hash: string, now: Date): Promise<boolean> {
    const [row] = await this.db.query('SELECT 1 FROM portal_links WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2', [hash, now]);
    return row !== undefined;
  }

  async useLink(hash: string, now: Date): Promise<string | undefined> {
    const [row] = await this.db.query<{ customer_id: string }>(
      'UPDATE portal_links SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING customer_id',
      [hash, now],
    );
    return row?.customer_id;
  }

  async customerByEmail(email: string): Promise<string | undefined> {
    const rows = await this.db.query<{ id: string }>(`SELECT id FROM customers WHERE lower(email) = lower($1) AND status <> 'erased' LIMIT 2`, [email]);
    return rows.length === 1 ? rows[0]!.id : undefined;
  }

  async emailInUse(email: string): Promise<boolean> {
    const [row] = await this.db.query('SELECT 1 FROM customers WHERE lower(email) = lower($1)', [email]);
    return row !== undefined;
  }
}
