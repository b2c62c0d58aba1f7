import type { Catalog } from '../catalog/index.js';
import type { Queryable } from '../store/index.js';
import { getInvoice, listInvoices, type StoredInvoice, type StoredInvoiceDetail } from './invoices.js';
import { type MrrReport, mrrReport, type RevenueReport, revenueReport } from './reports.js';

/** The invoice and revenue reads the admin API serves, bound to the database, so that routes hold no Db. */
export class BillingQueries {
  constructor(private readonly db: Queryable) {}

  listInvoices(customerId: string, options: { limit: number; status?: 'draft' | 'finalized' | undefined }): Promise<StoredInvoice[]> {
    return listInvoices(this.db, customerId, options);
  }

  getInvoice(id: string): Promise<StoredInvoiceDetail> {
    return getInvoice(this.db, id);
  }

  revenueReport(month: string): Promise<RevenueReport> {
    return revenueReport(this.db, month);
  }

  mrrReport(catalog: Catalog, at: number): Promise<MrrReport> {
    return mrrReport(this.db, catalog, at);
  }
}
