/**
 * The catalog file: its schema (rating plans and alert thresholds included), loading with file and line in every
 * error, route matching. Other modules import only this file (.dependency-cruiser.cjs).
 */
export { alertTypes, planThresholds, thresholdJson } from './alert-thresholds.js';
export type { AlertThreshold, AlertType } from './alert-thresholds.js';
export { Catalog } from './catalog.js';
export type { Plan } from './catalog.js';
export { CatalogError, loadCatalogFile } from './load.js';
export type { RouteMatch } from './routes.js';
export type { CaptureDocument, EndpointDocument } from './schema.js';
