/**
 * Accounts at scale, generated straight into PostgreSQL for the scale bench (bench/scale.ts) and the no-stall test:
 * N API keys in the real format, on N/2 customers, each with its default app and one subscription to the bench
 * catalog's plan (bench/catalog-realistic.yaml), two keys per subscription.
 *
 * PostgreSQL makes the rows itself (INSERT … SELECT over generate_series, SHA-256 in C): nothing crosses the wire,
 * which beats streaming the same rows through COPY. Key i's plaintext is derived from a seed and i (scaleKey), so the
 * load makes any key again without a file of them; the stored hash is hashApiKey's (SHA-256 of the key, hex).
 *
 * Standalone: `npx tsx bench/scale-keys.ts 1000000 [--rebuild]` (PostgreSQL at TOLLGATE_TEST_DATABASE_URL).
 */
import { createHash } from 'node:crypto';
import { cpus } from 'node:os';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import type { Queryable } from '../src/store/db.js';
import { migrate } from '../src/store/migrations.js';
import { PostgresDb } from '../src/store/postgres.js';

const defaultSeed = 'tollgate-scale-1';
export const scalePlan = { product: 'shop', plan: 'growth' } as const;

/**
 * Key `index`'s plaintext: `tg_` and 43 base62 characters, the shape generateApiKey gives, taken from a hash of the
 * seed and the index rather than from randomness (the same derivation as keyExpression below).
 */
export function scaleKey(index: number, seed = defaultSeed): string {
  const base64 = createHash('sha256').update(`${seed}:${index}`).digest('base64');
  return `tg_${base64.slice(0, 43).replaceAll('+', 'x').replaceAll('/', 'y')}`;
}

/** Ids follow the index: key i belongs to customer (and subscription, app) ⌊i/2⌋. */
export const scaleKeyId = (index: number) => `key_scale${index}`;
export const scaleCustomerId = (index: number) => `cus_scale${index}`;

/** scaleKey in SQL, of the bigint `i` and the seed in parameter $3. */
const keyExpression = `'tg_' || translate(left(encode(sha256(convert_to($3::text || ':' || i, 'UTF8')), 'base64'), 43), '+/', 'xy')`;

/** One table's rows for indexes [$1, $2); the keys' also take the seed ($3). */
const inserts = {
  customers: `INSERT INTO customers (id, name) SELECT 'cus_scale' || i, 'Scale customer ' || i FROM generate_series($1::bigint, $2::bigint - 1) i`,
  apps: `INSERT INTO apps (id, customer_id, name) SELECT 'app_scale' || i, 'cus_scale' || i, 'default' FROM generate_series($1::bigint, $2::bigint - 1) i`,
  subscriptions: `INSERT INTO subscriptions (id, customer_id, product_id, plan_id, status, started_at, period_anchor)
    SELECT 'sub_scale' || i, 'cus_scale' || i, '${scalePlan.product}', '${scalePlan.plan}', 'active', date_trunc('day', now()), date_trunc('day', now())
    FROM generate_series($1::bigint, $2::bigint - 1) i`,
  api_keys: `INSERT INTO api_keys (id, customer_id, app_id, subscription_id, hash, prefix, status)
    SELECT 'key_scale' || i, 'cus_scale' || i / 2, 'app_scale' || i / 2, 'sub_scale' || i / 2, encode(sha256(convert_to(key, 'UTF8')), 'hex'), left(key, 9), 'active'
    FROM (SELECT i, ${keyExpression} AS key FROM generate_series($1::bigint, $2::bigint - 1) i) keys`,
} as const;
type Table = keyof typeof inserts;

/** Rows per statement: big enough that a statement's overhead vanishes, small enough to spread over the cores. */
const chunkRows = 250_000;

/**
 * Inserts keys [from, to) and their customers, apps and subscriptions (from even), with `concurrency` statements in
 * flight. A loader, not a write path: triggers and foreign-key checks are off for its sessions (the rows are
 * consistent by construction, and a Stripe sync per customer is not what a bench or an import wants queued).
 */
export async function insertScaleAccounts(db: PostgresDb, from: number, to: number, options: { seed?: string; concurrency?: number } = {}): Promise<void> {
  if (from % 2 !== 0) throw new Error('scale accounts start at an even key index (two keys per customer)');
  const seed = options.seed ?? defaultSeed;
  const customers = { from: from / 2, to: Math.ceil(to / 2) };
  const work: { table: Table; from: number; to: number }[] = [];
  const chunks = (table: Table, range: { from: number; to: number }, rows = chunkRows) => {
    for (let at = range.from; at < range.to; at += rows) work.push({ table, from: at, to: Math.min(range.to, at + rows) });
  };
  // The heaviest (two hashes a row) first, so the cheap tables fill in beside its last chunks.
  chunks('api_keys', { from, to });
  for (const table of ['customers', 'apps', 'subscriptions'] as const) chunks(table, customers, chunkRows * 2);
  const worker = async () => {
    for (let next = work.shift(); next; next = work.shift()) {
      const { table, from: start, to: end } = next;
      await db.transaction(async (tx: Queryable) => {
        await tx.query('SET LOCAL session_replication_role = replica');
        await tx.query(inserts[table], table === 'api_keys' ? [start, end, seed] : [start, end]);
      });
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? Math.max(2, cpus().length) }, worker));
}

const baseUrl = () => process.env.TOLLGATE_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface ScaleDatabase {
  url: string;
  keys: number;
  /** True when the database already held these keys from an earlier run (nothing generated). */
  reused: boolean;
  /** Generation alone (schema, rows, indexes, statistics), in seconds; the original figure when reused. */
  generationS: number;
  /** Of which building the secondary indexes after the rows were in. */
  indexS: number;
}

const accountTables = ['customers', 'apps', 'subscriptions', 'api_keys'];

/**
 * A database holding `keys` scale accounts, `tollgate_bench_scale_<keys>`: the one an earlier run left when it holds
 * them (unless `rebuild`), otherwise made afresh. Revocations of earlier runs are undone, so every run starts alike.
 */
export async function ensureScaleDatabase(keys: number, options: { rebuild?: boolean } = {}): Promise<ScaleDatabase> {
  const name = `tollgate_bench_scale_${keys}`;
  const url = new URL(baseUrl());
  url.pathname = `/${name}`;
  const admin = new pg.Client({ connectionString: baseUrl() });
  await admin.connect();
  try {
    const exists = (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
    if (exists && !options.rebuild) {
      const held = await heldScale(url.toString());
      if (held?.keys === keys) {
        await resetScaleAccounts(url.toString());
        return { url: url.toString(), keys, reused: true, generationS: held.generationS, indexS: held.indexS };
      }
    }
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const db = new PostgresDb(url.toString());
  try {
    const started = performance.now();
    await migrate(db);
    // Secondary indexes are built once after the load, far faster than kept up row by row; constraint indexes
    // (primary keys, referenced by foreign keys, and the unique hash) stay.
    const secondary = await db.query<{ name: string; definition: string }>(
      `SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
       FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
       WHERE t.relname = ANY($1) AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)`,
      [accountTables],
    );
    for (const index of secondary) await db.query(`DROP INDEX ${index.name}`);
    const rowsStarted = performance.now();
    await insertScaleAccounts(db, 0, keys);
    console.log(`scale accounts: schema ${((rowsStarted - started) / 1000).toFixed(1)} s, rows ${((performance.now() - rowsStarted) / 1000).toFixed(1)} s`);
    const indexStarted = performance.now();
    const pending = [...secondary];
    const build = async () => {
      for (let index = pending.shift(); index; index = pending.shift()) await db.query(index.definition);
    };
    await Promise.all(Array.from({ length: Math.max(2, cpus().length) }, build));
    await db.query(`ANALYZE ${accountTables.join(', ')}`);
    const generationS = (performance.now() - started) / 1000;
    const indexS = (performance.now() - indexStarted) / 1000;
    await db.query('CREATE TABLE bench_scale_accounts (keys bigint NOT NULL, generation_s double precision NOT NULL, index_s double precision NOT NULL)');
    await db.query('INSERT INTO bench_scale_accounts VALUES ($1, $2, $3)', [keys, generationS, indexS]);
    return { url: url.toString(), keys, reused: false, generationS, indexS };
  } finally {
    await db.close();
  }
}

async function heldScale(url: string): Promise<{ keys: number; generationS: number; indexS: number } | undefined> {
  const db = new PostgresDb(url);
  try {
    const [row] = await db.query<{ keys: string; generation_s: number; index_s: number }>('SELECT * FROM bench_scale_accounts');
    return row && { keys: Number(row.keys), generationS: row.generation_s, indexS: row.index_s };
  } catch {
    return undefined; // no marker: an interrupted generation
  } finally {
    await db.close();
  }
}

/** Undoes what a bench run changes: revoked keys are active again. */
async function resetScaleAccounts(url: string): Promise<void> {
  const db = new PostgresDb(url);
  try {
    await db.query(`UPDATE api_keys SET status = 'active', revoked_at = NULL WHERE status <> 'active'`);
  } finally {
    await db.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const keys = Number(process.argv[2] ?? 100_000);
  console.log(JSON.stringify(await ensureScaleDatabase(keys, { rebuild: process.argv.includes('--rebuild') })));
}
