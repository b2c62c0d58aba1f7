import type { Db, Queryable } from './db.js';

/**
 * A Db whose queries and nested transactions all run in the open transaction `tx`: what a repository's
 * `transaction` hands to the records it gives its work.
 */
export function joinedTransaction(db: Db, tx: Queryable): Db {
  return {
    kind: db.kind,
    query: (sql, params) => tx.query(sql, params),
    transaction: (fn) => fn(tx),
    withAdvisoryLock: () => Promise.reject(new Error('advisory locks are not taken inside a transaction')),
    close: () => Promise.reject(new Error('a joined transaction is closed by its owner')),
  };
}
