import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgliteDb } from '../src/store/pglite.js';
import { StripeCustomers } from '../src/stripe/customers.js';
import { SqlStripeRecords } from '../src/stripe/sql-records.js';
import type { OutboxItem } from '../src/stripe/outbox.js';
import { workFor } from '../src/stripe/work.js';
import { startStripeServer, type StripeServer } from './stripe-server/server.js';
import { openMigratedPglite } from './support/pglite-template.js';

/** Stripe customers are made once per customer of ours, whatever runs concurrently (a real PGlite, the local Stripe). */
describe('Stripe customers', () => {
  let db: PgliteDb;
  let stripe: StripeServer;
  let customers: StripeCustomers;

  beforeAll(async () => {
    db = await openMigratedPglite();
    // Each create takes a while, so the two below overlap.
    stripe = await startStripeServer({ latencyMs: 100 });
    customers = new StripeCustomers(new SqlStripeRecords(db), new Stripe('sk_test_customers', { host: stripe.host, port: stripe.port, protocol: 'http' }));
  });
  afterAll(async () => {
    await stripe?.close();
    await db?.close();
  });

  const work = (kind: OutboxItem['kind'], keyGeneration: number) =>
    workFor({
      id: String(keyGeneration + 1),
      kind,
      subjectId: 'acme',
      status: 'pending',
      revision: 0,
      attempts: keyGeneration,
      keyGeneration,
      nextAttemptAt: '',
      lastError: null,
      createdAt: '',
      updatedAt: '',
    });

  it('creates one Stripe customer when two work items of a new customer need it at once, with different idempotency keys', async () => {
    await db.query(`INSERT INTO customers (id, name) VALUES ('acme', 'Acme')`);
    // A customer sync on its first keys, and an invoice push whose earlier key was given up (a saved Stripe failure).
    const ids = await Promise.all([customers.ensure('acme', work('customer.sync', 0)), customers.ensure('acme', work('invoice.finalized', 1))]);
    expect(ids[0]).toBe(ids[1]);
    const tagged = [...stripe.state.customers.values()].filter((customer) => customer.metadata?.tollgate_customer_id === 'acme');
    expect(tagged.map((customer) => customer.id)).toEqual([ids[0]]);
  });
});
