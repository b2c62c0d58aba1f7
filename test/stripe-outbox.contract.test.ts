import { onBothDatabases } from './support/contract-databases.js';
import { SqlStripeOutbox } from '../src/stripe/index.js';
import type { Db } from '../src/store/db.js';
import { stripeOutboxContract } from './contracts/stripe-outbox.contract.js';

/** The adapter over a database onBothDatabases has emptied. */
const storesOf = (db: Db) => {
  return { outbox: new SqlStripeOutbox(db), close: async () => {} };
};

/** The SQL adapter on both databases it runs on, emptied before every test. */
onBothDatabases(['stripe_outbox'], (name, emptied) => stripeOutboxContract(name, async () => storesOf(await emptied())));
