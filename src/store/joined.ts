import type { Db, Queryable } from './db.js';

/**
 * A Db whose queries and nested transactions all run in the open transaction `tx`: how a repository joins the
 * transaction of its caller (another module's, or its own `transaction`).
 */
export function joinedTransaction(db: Pick<Db, 'kind'>, tx: Queryable): Db {
  return {
    kind: db.kind,
    query: (sql, params) => tx.query(sql, params),
    transaction: (fn) => fn(tx),
    withAdvisoryLock: () => Promise.reject(new Error('advisory locks are not taken inside a transaction')),
    close: () => Promise.reject(new Error('a joined transaction is closed by its owner')),
  };
}
