import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statfsSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { migrate, migrations } from '../src/store/migrations.js';
import { PgliteDb } from '../src/store/pglite.js';
import { PostgresDb } from '../src/store/postgres.js';
import { runDatabasePrefix, runRedisPrefix, unlinkKeys, withPgClient } from './support/test-run.js';

/**
 * Builds dist/ when src/ is newer, so tests that start `tollgate serve` as a process run the built CLI (as users do)
 * rather than transpiling all of src/ on each start. The run's id for every key prefix and database the tests create (test/support/test-run.ts), and a temporary
 * directory of the run's own. At the end, whatever of this run is left in Redis, PostgreSQL or that directory is named
 * and removed, and leftover keys or databases fail the run: a test that leaves state is a defect.
 */
const redisUrl = process.env.TOLLGATE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const databaseUrl = process.env.TOLLGATE_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export default async function setup() {
  buildIfStale();
  const runId = randomBytes(4).toString('hex');
  // Workers start after this and inherit the environment; spawned servers get it from them.
  process.env.TOLLGATE_TEST_RUN_ID = runId;
  const runTmp = join(runTmpParent(), `tollgate-run-${runId}`);
  mkdirSync(runTmp, { recursive: true });
  process.env.TMPDIR = runTmp;
  const databaseTemplate = `${runDatabasePrefix(runId)}template`;
  try {
    [process.env.TOLLGATE_TEST_PGDATA_TEMPLATE] = await Promise.all([
      migratedPgliteTemplate(join(runTmp, templateName), join(runTmp, beforeMigration8Name)),
      migratedDatabaseTemplate(databaseTemplate),
    ]);
  } catch (error) {
    // Vitest runs no teardown for a setup that failed.
    await dropDatabase(databaseTemplate).catch(() => {});
    rmSync(runTmp, { recursive: true, force: true });
    throw error;
  }
  process.env.TOLLGATE_TEST_PGDATA_BEFORE_8 = join(runTmp, beforeMigration8Name);
  process.env.TOLLGATE_TEST_DATABASE_TEMPLATE = databaseTemplate;

  return async () => {
    await dropDatabase(databaseTemplate).catch((error: Error) => console.warn(`template database ${databaseTemplate} not dropped: ${error.message}`));
    const keys = await leftoverKeys(runId).catch((error: Error) => [`(Redis not checked: ${error.message})`]);
    const databases = await leftoverDatabases(runId).catch((error: Error) => [`(PostgreSQL not checked: ${error.message})`]);
    const files = readdirSync(runTmp).filter((name) => name !== templateName && name !== beforeMigration8Name);
    rmSync(runTmp, { recursive: true, force: true });
    if (files.length > 0) console.warn(`\ntests left ${files.length} temporary entries (removed): ${files.slice(0, 20).join(', ')}`);
    if (keys.length === 0 && databases.length === 0) return;
    const lines = ['', '='.repeat(100), `TESTS LEFT STATE BEHIND (run ${runId}); removed now, but the test that made it must clean up:`];
    if (keys.length > 0) lines.push(`  ${keys.length} Redis keys, by prefix:`, ...byPrefix(keys).map((line) => `    ${line}`));
    if (databases.length > 0) lines.push(`  ${databases.length} PostgreSQL databases: ${databases.join(', ')}`);
    lines.push('='.repeat(100));
    console.error(lines.join('\n'));
    process.exitCode = 1;
  };
}

const templateName = 'pgdata-template';
const beforeMigration8Name = 'pgdata-before-8';

/**
 * Memory (/dev/shm) when it has room, else the system's temporary directory. Every embedded start copies the 40 MB
 * migrated database into a fresh data directory and removes it after; on disk that took about two seconds a test on a
 * busy machine, in memory a fraction, and PGlite's own writes are cheaper there too.
 */
function runTmpParent(): string {
  const shm = '/dev/shm';
  try {
    const { bavail, bsize } = statfsSync(shm);
    if (bavail * bsize >= 4 * 1024 ** 3) return shm;
  } catch {
    // No /dev/shm (not Linux)
  }
  return tmpdir();
}

/**
 * One embedded database, migrated, that test data directories start from (test/support/pglite-template.ts); on the
 * way, a copy as it was before migration 8, which test/metering.test.ts migrates over data of that time.
 */
async function migratedPgliteTemplate(dir: string, beforeMigration8: string): Promise<string> {
  const early = await PgliteDb.open(dir);
  try {
    await migrate(early, migrations.filter((migration) => migration.version < 8));
  } finally {
    await early.close();
  }
  cpSync(dir, beforeMigration8, { recursive: true });
  const db = await PgliteDb.open(dir);
  try {
    await migrate(db);
  } finally {
    await db.close();
  }
  return dir;
}

/**
 * One PostgreSQL database, migrated, that test databases are created from (createTestDatabase's `migrated`). Nothing
 * stays connected to it: PostgreSQL copies a template only while no session uses it.
 */
async function migratedDatabaseTemplate(name: string): Promise<void> {
  await adminQuery(`CREATE DATABASE ${name}`);
  const url = new URL(databaseUrl);
  url.pathname = `/${name}`;
  const db = new PostgresDb(url.toString());
  try {
    await migrate(db);
  } finally {
    await db.close();
  }
}

const dropDatabase = (name: string) => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);

async function adminQuery(sql: string): Promise<void> {
  await withPgClient(databaseUrl, (client) => client.query(sql));
}

function buildIfStale(): void {
  const built = 'dist/cli/bin.js';
  const newest = (dir: string): number =>
    Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((entry) => (entry.isDirectory() ? newest(join(dir, entry.name)) : statSync(join(dir, entry.name)).mtimeMs)));
  const sources = Math.max(newest('src'), statSync('tsconfig.json').mtimeMs, statSync('tsconfig.build.json').mtimeMs);
  if (existsSync(built) && statSync(built).mtimeMs >= sources) return;
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  // tsc may leave an unchanged file's time alone; the next run must see this build as current.
  const now = new Date();
  utimesSync(built, now, now);
}

async function leftoverKeys(runId: string): Promise<string[]> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    return await unlinkKeys(redis, `${runRedisPrefix(runId)}*`);
  } finally {
    redis.disconnect();
  }
}

async function leftoverDatabases(runId: string): Promise<string[]> {
  return withPgClient(databaseUrl, async (client) => {
    const { rows } = await client.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname`, [
      runDatabasePrefix(runId),
    ]);
    for (const { datname } of rows) await client.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    return rows.map((row) => row.datname);
  });
}

/** `tgtest_<run>_app_1a2b…: 12 keys (e.g. tgtest_…:{acme}:q:…)`, one line per prefix. */
function byPrefix(keys: string[]): string[] {
  const groups = new Map<string, string[]>();
  for (const key of keys) {
    const prefix = key.split(':')[0]!;
    groups.set(prefix, [...(groups.get(prefix) ?? []), key]);
  }
  return [...groups].map(([prefix, members]) => `${prefix}: ${members.length} keys (e.g. ${members[0]})`);
}
