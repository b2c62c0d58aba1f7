/**
 * What every module may use: clock and scheduler, money, errors, logger, file watching, TLS files, the data-directory lock,
 * deadlines, a bounded cache. Other modules import only this file (.dependency-cruiser.cjs).
 */
export { writeInteger } from './ascii.js';
export { BoundedCache } from './bounded-cache.js';
export { systemClock } from './clock.js';
export type { CancelTimer, Clock, Timers } from './clock.js';
export { DataDirLockedError, lockDataDir } from './data-dir-lock.js';
export { stepWithin } from './deadline.js';
export { conflict, errorStatus, invalid, notFound, TollgateError } from './errors.js';
export type { ErrorCode, TollgateErrorOptions } from './errors.js';
export { ExitDeadline } from './exit-deadline.js';
export { watchFiles } from './file-watch.js';
export { HmacSha256 } from './hmac-sha256.js';
export { createLogger } from './logger.js';
export type { Logger } from './logger.js';
export { CURRENCY_CODES, Decimal, formatMajor, formatMoney, isCurrencyCode, minorToMajor, minorUnitExponent, NON_NEGATIVE_DECIMAL, parseMajorAmount, parseUnitPrice, roundToMinorUnits } from './money.js';
export type { CurrencyCode } from './money.js';
export { checkPortsFree, PortUnavailableError } from './ports.js';
export { Scheduler, soleLeadership } from './scheduler.js';
export type { Job, JobOptions, Leadership } from './scheduler.js';
export { clusterConnection, connectRedis } from './redis-client.js';
export { readTlsFiles, watchTlsFiles } from './tls-files.js';
export type { TlsFilePaths, TlsServerOptions } from './tls-files.js';
export { formatDecimal } from './money.js';
export { portUnavailable } from './ports.js';
export type { WantedPort } from './ports.js';
export { version } from './version.js';
