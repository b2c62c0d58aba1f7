/**
 * Export and erasure of a customer's personal data. Other modules import only this file (.dependency-cruiser.cjs).
 */
export { exportCustomer } from './customer-data.js';
export type { CustomerExport } from './customer-data.js';
export { CustomerErasure } from './erasure.js';
