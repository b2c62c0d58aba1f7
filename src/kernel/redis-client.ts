import { Cluster, Redis } from 'ioredis';

/**
 * A Redis client for `url`: one server, or a Redis Cluster when it lists several comma-separated seeds. Commands fail
 * at once while disconnected instead of queueing behind a dead connection; the connection keeps reconnecting in the
 * background, and errors surface per command.
 */
export function connectRedis(url: string): Redis | Cluster {
  const common = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // No commandTimeout: callers time their commands out themselves, telling a slow Redis from a stalled event loop.
    lazyConnect: false,
  };
  const urls = url.split(',').map((seed) => seed.trim());
  let client: Redis | Cluster;
  if (urls.length > 1) {
    const { nodes, credentials } = clusterConnection(urls);
    client = new Cluster(nodes, { enableOfflineQueue: false, redisOptions: { ...common, ...credentials } });
  } else {
    client = new Redis(urls[0]!, common);
  }
  client.on('error', () => {});
  return client;
}

/** Cluster seeds from URLs; TLS and credentials come from the first (every node of one cluster shares them). */
export function clusterConnection(urls: readonly string[]): {
  nodes: { host: string; port: number }[];
  credentials: { tls?: object; username?: string; password?: string };
} {
  const parsed = urls.map((url) => new URL(url));
  const first = parsed[0]!;
  return {
    nodes: parsed.map((url) => ({ host: url.hostname, port: Number(url.port || 6379) })),
    credentials: {
      ...(first.protocol === 'rediss:' ? { tls: {} } : {}),
      ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
      ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
    },
  };
}
