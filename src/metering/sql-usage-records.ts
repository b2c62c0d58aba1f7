import { type Db, withDomainErrors } from '../store/index.js';
import type { DailyUsage, EndpointRollup, UsageRecords } from './usage-records.js';

/** The usage rollups (usage_rollups, usage_daily_rollups) the metering sink keeps, in PostgreSQL or PGlite. */
export class SqlUsageRecords implements UsageRecords {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = withDomainErrors(db);
  }

  async rollups(customerId: string, periods: readonly { subscriptionId: string; periodStart: number }[]): Promise<EndpointRollup[]> {
    if (periods.length === 0) return [];
    const rows = await this.db.query<RollupRow>(
      `SELECT subscription_id, endpoint_id, calls, units, billable_calls, billable_units, denied_calls, request_bytes, response_bytes
       FROM usage_rollups
       WHERE customer_id = $1
         AND (subscription_id, period_start) IN (SELECT * FROM unnest($2::text[], $3::timestamptz[]))
       ORDER BY subscription_id, endpoint_id`,
      [customerId, periods.map((p) => p.subscriptionId), periods.map((p) => new Date(p.periodStart).toISOString())],
    );
    // int8 arrives as a string; usage sums stay far below 2^53.
    return rows.map((row) => ({
      subscriptionId: row.subscription_id,
      endpointId: row.endpoint_id,
      calls: Number(row.calls),
      units: Number(row.units),
      billableCalls: Number(row.billable_calls),
      billableUnits: Number(row.billable_units),
      deniedCalls: Number(row.denied_calls),
      requestBytes: Number(row.request_bytes),
      responseBytes: Number(row.response_bytes),
    }));
  }

  async daily(customerId: string, from: string, to: string): Promise<DailyUsage[]> {
    const rows = await this.db.query<{ day: string; endpoint_id: string; calls: string; units: string; denied_calls: string }>(
      `SELECT to_char(day, 'YYYY-MM-DD') AS day, endpoint_id, calls, units, denied_calls FROM usage_daily_rollups
       WHERE customer_id = $1 AND day BETWEEN $2::date AND $3::date ORDER BY day, endpoint_id`,
      [customerId, from, to],
    );
    return rows.map((row) => ({ day: row.day, endpointId: row.endpoint_id || null, calls: Number(row.calls), units: Number(row.units), deniedCalls: Number(row.denied_calls) }));
  }
}

interface RollupRow {
  subscription_id: string;
  endpoint_id: string;
  calls: string;
  units: string;
  billable_calls: string;
  billable_units: string;
  denied_calls: string;
  request_bytes: string;
  response_bytes: string;
}
