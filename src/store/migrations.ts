import type { Db } from './db.js';

export interface Migration {
  version: number;
  name: string;
  /** One statement per entry: PGlite's extended protocol runs one statement per call. */
  statements: string[];
}

/** Keeps updated_at current, which the hot path's identity cache polls for changes. */
const touchTrigger = (table: string) => [
  `CREATE TRIGGER ${table}_touch BEFORE UPDATE ON ${table} FOR EACH ROW EXECUTE FUNCTION tollgate_touch()`,
  `CREATE INDEX ${table}_updated_at ON ${table} (updated_at)`,
];

export const migrations: Migration[] = [
  {
    version: 1,
    name: 'accounts',
    statements: [
      `CREATE FUNCTION tollgate_touch() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$`,
      `CREATE TABLE customers (
         id text PRIMARY KEY,
         name text NOT NULL,
         email text,
         status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
         status_reason text,
         metadata jsonb NOT NULL DEFAULT '{}',
         created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
      ...touchTrigger('customers'),
      `CREATE TABLE apps (
         id text PRIMARY KEY,
         customer_id text NOT NULL REFERENCES customers (id),
         name text NOT NULL,
         created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         UNIQUE (customer_id, name))`,
      ...touchTrigger('apps'),
      `CREATE TABLE subscriptions (
         id text PRIMARY KEY,
         customer_id text NOT NULL REFERENCES customers (id),
         product_id text NOT NULL,
         plan_id text NOT NULL,
         status text NOT NULL CHECK (status IN ('active', 'canceled')),
         started_at timestamptz NOT NULL,
         period_anchor timestamptz NOT NULL,
         canceled_at timestamptz,
         created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
      `CREATE UNIQUE INDEX subscriptions_one_active_per_product ON subscriptions (customer_id, product_id)
         WHERE status = 'active'`,
      ...touchTrigger('subscriptions'),
      `CREATE TABLE api_keys (
         id text PRIMARY KEY,
         customer_id text NOT NULL REFERENCES customers (id),
         app_id text NOT NULL REFERENCES apps (id),
         subscription_id text NOT NULL REFERENCES subscriptions (id),
         name text,
         hash text NOT NULL UNIQUE,
         prefix text NOT NULL,
         status text NOT NULL CHECK (status IN ('active', 'pending', 'revoked')),
         created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
         revoked_at timestamptz,
         updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
      `CREATE INDEX api_keys_customer ON api_keys (customer_id)`,
      ...touchTrigger('api_keys'),
    ],
  },
];

const migrationLock = 0x746f6c6c; // "toll"

/** Applies pending migrations in order, once, even with several replicas starting together. */
export async function migrate(db: Db, all: Migration[] = migrations): Promise<number[]> {
  await db.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
  for (;;) {
    const applied = await db.withAdvisoryLock(migrationLock, async () => {
      const done = new Set(
        (await db.query<{ version: number }>('SELECT version FROM schema_migrations')).map((row) => row.version),
      );
      const pending = all.filter((migration) => !done.has(migration.version)).sort((a, b) => a.version - b.version);
      for (const migration of pending) {
        await db.transaction(async (tx) => {
          for (const statement of migration.statements) await tx.query(statement);
          await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
        });
      }
      return pending.map((migration) => migration.version);
    });
    if (applied) return applied;
    // Another replica is migrating; wait for it rather than racing it.
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
