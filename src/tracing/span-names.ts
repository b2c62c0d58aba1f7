/** Every span Tollgate starts, by name: docs/TRACING.md lists them with their attributes. */
export const spanNames = {
  check: 'envoy.service.auth.v3.Authorization/Check',
  checkDecide: 'tollgate.check.decide',
  checkCount: 'tollgate.counters.consume',
  ingestReceive: 'tollgate.ingest.receive',
  ingestStore: 'tollgate.ingest.store',
  ratingPass: 'tollgate.rating.pass',
  ratingBatch: 'tollgate.rating.batch',
  stripeSyncPass: 'tollgate.stripe.sync',
  stripeWork: 'tollgate.stripe.work',
} as const;
