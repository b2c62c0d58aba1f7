import type { Config, Role } from './config/index.js';
import type { WantedPort } from './kernel/index.js';

export const runsEdge = (role: Role) => role !== 'control';
export const runsControl = (role: Role) => role !== 'edge';

/** The ports the servers of the configured role listen on, named by the settings that chose them. */
export function listenPorts(config: Config): WantedPort[] {
  return [
    ...(runsEdge(config.role) ? [{ name: 'gRPC', variable: 'TOLLGATE_GRPC_PORT', host: config.grpc.host, port: config.grpc.port }] : []),
    { name: 'HTTP', variable: 'TOLLGATE_HTTP_PORT', host: config.http.host, port: config.http.port },
    ...(config.portal && runsControl(config.role) ? [{ name: 'portal', variable: 'TOLLGATE_PORTAL_PORT', host: config.portal.host, port: config.portal.port }] : []),
  ];
}
