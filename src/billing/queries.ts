import type { Catalog } from '../catalog/index.js';
import { notFound } from '../kernel/index.js';
import type { InvoiceRecords, StoredInvoice, StoredInvoiceDetail, SubscriptionHistories } from './records.js';
import { type MrrReport, mrrReport, type RevenueReport, revenueReport } from './reports.js';

/** The invoice and revenue reads the admin API and the portal serve, over the records, so that routes hold no Db. */
export class BillingQueries {
  constructor(
    private readonly invoices: InvoiceRecords,
    private readonly histories: SubscriptionHistories,
  ) {}

  listInvoices(customerId: string, options: { limit: number; status?: 'draft' | 'finalized' | undefined }): Promise<StoredInvoice[]> {
    return this.invoices.invoices(customerId, options);
  }

  async getInvoice(id: string): Promise<StoredInvoiceDetail> {
    const invoice = await this.invoices.invoice(id);
    if (!invoice) throw notFound('invoice', id);
    return invoice;
  }

  revenueReport(month: string): Promise<RevenueReport> {
    return revenueReport(this.invoices, month);
  }

  mrrReport(catalog: Catalog, at: number): Promise<MrrReport> {
    return mrrReport(this.histories, catalog, at);
  }
}
