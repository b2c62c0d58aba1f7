import type { Db, Queryable } from './db.js';

export interface DbObserver {
  /** Called once per query with its duration in seconds and whether it failed. */
  observe(seconds: number, failed: boolean): void;
}

/** Times every query of a Db (including inside transactions) for the database latency and error metrics. */
export function instrumentDb(db: Db, observer: DbObserver): Db {
  const timed = (target: Queryable): Queryable => ({
    query: async <Row>(sql: string, params?: unknown[]) => {
      const started = process.hrtime.bigint();
      let failed = true;
      try {
        const rows = await target.query<Row>(sql, params);
        failed = false;
        return rows;
      } finally {
        observer.observe(Number(process.hrtime.bigint() - started) / 1e9, failed);
      }
    },
  });
  return {
    kind: db.kind,
    query: timed(db).query,
    transaction: (fn) => db.transaction((tx) => fn(timed(tx))),
    withAdvisoryLock: (lockId, fn) => db.withAdvisoryLock(lockId, (tx) => fn(timed(tx))),
    close: () => db.close(),
  };
}
