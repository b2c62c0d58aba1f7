import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PortalSignInRecords } from '../../src/portal/index.js';

/** Rows of other modules the sign-in records read, written by the factory's own means. */
export interface SignInFixtures {
  customer(id: string, options?: { email?: string; erased?: boolean }): Promise<void>;
  /** Marks an existing customer erased, as erasure does. */
  erase(id: string): Promise<void>;
}

/** A fresh, empty store per test; `close` removes whatever the factory created. */
export interface SignInRecordsSubject {
  records: PortalSignInRecords;
  fixtures: SignInFixtures;
  close(): Promise<void>;
}

const at = (iso: string) => new Date(iso);
const noon = at('2026-12-07T12:00:00Z');
const later = (ms: number) => new Date(noon.getTime() + ms);
const hash = (n: number) => n.toString(16).padStart(64, '0');
const secret = (n: number, customerId: string, ttlMs = 3_600_000) => ({ hash: hash(n), customerId, createdAt: noon, expiresAt: later(ttlMs) });

/** One contract for every PortalSignInRecords: what the portal's sign-in relies on. */
export function portalSignInRecordsContract(name: string, open: () => Promise<SignInRecordsSubject>): void {
  describe(`PortalSignInRecords: ${name}`, () => {
    let subject: SignInRecordsSubject;
    let records: PortalSignInRecords;
    beforeEach(async () => {
      subject = await open();
      records = subject.records;
      await subject.fixtures.customer('acme', { email: 'Ops@Acme.example' });
    });
    afterEach(() => subject.close());

    it('finds a session by its hash until it expires, and forgets it when ended', async () => {
      await records.addSession(secret(1, 'acme'));
      expect(await records.sessionCustomer(hash(1), later(1_000))).toBe('acme');
      expect(await records.sessionCustomer(hash(2), later(1_000))).toBeUndefined();
      expect(await records.sessionCustomer(hash(1), later(3_600_000))).toBeUndefined();
      await records.deleteSession(hash(1));
      expect(await records.sessionCustomer(hash(1), later(1_000))).toBeUndefined();
    });

    it("ends an erased customer's sessions", async () => {
      await subject.fixtures.customer('gone');
      await records.addSession(secret(3, 'gone'));
      expect(await records.sessionCustomer(hash(3), later(1_000))).toBe('gone');
      await subject.fixtures.erase('gone');
      expect(await records.sessionCustomer(hash(3), later(1_000))).toBeUndefined();
    });

    it('uses a link once, before it expires, and tells whether it is usable without using it', async () => {
      await records.addLink(secret(4, 'acme', 60_000));
      await records.addLink(secret(5, 'acme', 60_000));
      expect(await records.linkUsable(hash(4), later(1_000))).toBe(true);
      expect(await records.linkUsable(hash(4), later(1_000))).toBe(true);
      expect(await records.useLink(hash(4), later(1_000))).toBe('acme');
      expect(await records.useLink(hash(4), later(2_000))).toBeUndefined();
      expect(await records.linkUsable(hash(4), later(2_000))).toBe(false);
      expect(await records.linkUsable(hash(5), later(60_000))).toBe(false);
      expect(await records.useLink(hash(5), later(60_000))).toBeUndefined();
      expect(await records.useLink(hash(6), later(1_000))).toBeUndefined();
    });

    it('sweeps expired sessions and links only', async () => {
      await records.addSession(secret(7, 'acme', 1_000));
      await records.addSession(secret(8, 'acme', 10_000));
      await records.addLink(secret(9, 'acme', 1_000));
      await records.addLink(secret(10, 'acme', 10_000));
      await records.sweepExpired(later(1_000));
      // Swept rows are gone: a hash reused for a new row is accepted again.
      await records.addSession(secret(7, 'acme', 20_000));
      await records.addLink(secret(9, 'acme', 20_000));
      expect(await records.sessionCustomer(hash(8), later(5_000))).toBe('acme');
      expect(await records.linkUsable(hash(10), later(5_000))).toBe(true);
    });

    it('knows customers, and finds one by email in any case unless none or several have it or it is erased', async () => {
      expect(await records.customerExists('acme')).toBe(true);
      expect(await records.customerExists('nobody')).toBe(false);
      expect(await records.customerByEmail('ops@acme.EXAMPLE')).toBe('acme');
      expect(await records.emailInUse('OPS@acme.example')).toBe(true);
      expect(await records.customerByEmail('who@else.example')).toBeUndefined();
      expect(await records.emailInUse('who@else.example')).toBe(false);

      await subject.fixtures.customer('erased', { email: 'left@acme.example', erased: true });
      expect(await records.customerByEmail('left@acme.example')).toBeUndefined();
      expect(await records.emailInUse('left@acme.example')).toBe(true);

      await subject.fixtures.customer('acme-eu', { email: 'ops@acme.example' });
      expect(await records.customerByEmail('ops@acme.example')).toBeUndefined();
    });
  });
}
