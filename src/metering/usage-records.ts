export interface UsageTotals {
  /** Allowed calls (what the quota counts); the byte and unit measures cover these too. */
  calls: number;
  units: number;
  billableCalls: number;
  billableUnits: number;
  deniedCalls: number;
  requestBytes: number;
  responseBytes: number;
}

export interface DailyUsage {
  /** UTC, YYYY-MM-DD. */
  day: string;
  /** null: calls that matched no catalog endpoint. */
  endpointId: string | null;
  calls: number;
  units: number;
  deniedCalls: number;
}

/** One subscription period's rollup for one endpoint ('' for calls that matched no catalog endpoint). */
export interface EndpointRollup extends UsageTotals {
  subscriptionId: string;
  endpointId: string;
}

/**
 * The metered usage as the usage reports read it: per subscription period and endpoint, and per UTC day. Failures are
 * domain errors. `test/contracts/usage-records.contract.ts` is the contract.
 */
export interface UsageRecords {
  /** The customer's rollups of these subscription periods, by subscription and endpoint. */
  rollups(customerId: string, periods: readonly { subscriptionId: string; periodStart: number }[]): Promise<EndpointRollup[]>;
  /** Per UTC day and endpoint, days `from` through `to` (YYYY-MM-DD), by day and endpoint; days without calls are absent. */
  daily(customerId: string, from: string, to: string): Promise<DailyUsage[]>;
}
