/**
 * The Check hot path. Other modules import only this file (.dependency-cruiser.cjs).
 *
 * The life of one Check, file by file:
 * 1. decode      check-request-decoder.ts  CheckRequest bytes to the HTTP facts the Check reads (CheckRequestWire);
 *                                          check-method.ts types decode → handle → encode as one gRPC method.
 * 2. handle      check-handler.ts          the handler: facts, tracing (free when off), JWT or API key, metrics; it
 *                                          compiles the catalog's plans when it first sees a catalog (and a reload).
 * 3. resolve key decide.ts `admit`         the key from its header, its identity from memory (identity/).
 * 4. match route decide.ts `admit`         host, method and path to one product endpoint (catalog/).
 * 5. plan        check-plan.ts             the compiled plan for (endpoint × plan), bound to the key and billing
 *                                          period: counter names, metadata, identity headers and their bytes.
 * 6. count       counters/ (one call)      every limit of the bound plan, atomically; Redis batches one event-loop
 *                                          turn's Checks and sends a repeated limit set (limitSetId) once.
 * 7. decide      decide.ts `conclude`      outcomes (one per limit, in order) to a Decision (decision.ts): an allow
 *                                          with headers and metadata, or a denial as data; usage-identity.ts signs
 *                                          an allowed call's usage id.
 * 8. encode      check-response-encoder.ts the Decision to CheckResponse bytes, copying the bound plan's pre-encoded
 *                                          parts.
 */
export { checkMethod } from './check-method.js';
export { createCheckHandler, startDecisionSeries } from './check-handler.js';
export { quotaCounterName } from './check-plan.js';
export { extractKey, memoizePeriods } from './decide.js';
export { UsageIdentity } from './usage-identity.js';
