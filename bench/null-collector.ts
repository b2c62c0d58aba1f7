/**
 * A stand-in OpenTelemetry collector for the tracing benchmark: accepts OTLP/HTTP exports (POST /v1/traces), reads
 * and discards them, and answers GET /stats with what it received, so the benchmark can tell spans were exported.
 * Usage: tsx bench/null-collector.ts; prints its port as one JSON line when ready.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(0));

const received = { requests: 0, bytes: 0 };
const server = createServer((request, response) => {
  if (request.method === 'GET' && request.url === '/stats') {
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(received));
    return;
  }
  request.on('data', (chunk: Buffer) => (received.bytes += chunk.length));
  request.on('end', () => {
    if (request.method !== 'POST' || request.url !== '/v1/traces') {
      response.writeHead(404).end();
      return;
    }
    received.requests += 1;
    response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`));
