/**
 * The portal's sign-in records: sessions and operator-issued sign-in links, each known only by the SHA-256 of its
 * secret, and the customer facts sign-in needs. The rules (secrets, expiry, single use) are PortalAuthStore's
 * (auth-store.ts); this port only keeps and finds rows.
 */
export interface SignInSecretRecord {
  /** SHA-256 of the secret the browser holds, hex. */
  hash: string;
  customerId: string;
  createdAt: Date;
  expiresAt: Date;
}

export interface PortalSignInRecords {
  /** Deletes the sessions and links expired at `now`. */
  sweepExpired(now: Date): Promise<void>;
  addSession(session: SignInSecretRecord): Promise<void>;
  /** The customer of a session unexpired at `now`, unless the customer was erased. */
  sessionCustomer(hash: string, now: Date): Promise<string | undefined>;
  deleteSession(hash: string): Promise<void>;
  customerExists(customerId: string): Promise<boolean>;
  addLink(link: SignInSecretRecord): Promise<void>;
  /** Whether a link is unused and unexpired at `now`. */
  linkUsable(hash: string, now: Date): Promise<boolean>;
  /** Marks an unused, unexpired link used at `now`, once: its customer, or undefined. */
  useLink(hash: string, now: Date): Promise<string | undefined>;
  /** The one customer not erased with this email (any case); undefined when none or several have it. */
  customerByEmail(email: string): Promise<string | undefined>;
  /** Whether any customer, erased ones included, has this email (any case). */
  emailInUse(email: string): Promise<boolean>;
}
