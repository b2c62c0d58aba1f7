import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One span as an OTLP/JSON export carries it, flattened: ids in hex, attributes as plain values. */
export interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  /** OTLP's SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  attributes: Record<string, string | number | boolean>;
  /** OTLP's status code: 0 unset, 1 ok, 2 error. */
  statusCode: number;
  events: { name: string; attributes: Record<string, string | number | boolean> }[];
  resource: Record<string, string | number | boolean>;
}

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: number | string; doubleValue?: number; boolValue?: boolean };
}

const plain = (attributes: OtlpAttribute[] = []) =>
  Object.fromEntries(
    attributes.map(({ key, value }) => [key, value.stringValue ?? value.boolValue ?? (value.intValue !== undefined ? Number(value.intValue) : value.doubleValue!)]),
  );

/**
 * An OTLP/HTTP trace receiver on loopback, as a collector's: it takes POST /v1/traces (JSON or protobuf), keeps each
 * request, and answers `status` (200 unless a test sets another).
 */
export class OtlpReceiver {
  /** Every request, with the status it was answered. */
  readonly requests: { path: string; contentType: string; body: Buffer; status: number }[] = [];
  status = 200;

  private constructor(private readonly server: Server) {}

  static async start(): Promise<OtlpReceiver> {
    const server = createServer();
    const receiver = new OtlpReceiver(server);
    server.on('request', (request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        if (request.method !== 'POST' || request.url !== '/v1/traces') {
          response.writeHead(404).end();
          return;
        }
        const contentType = request.headers['content-type'] ?? '';
        receiver.requests.push({ path: request.url, contentType, body: Buffer.concat(chunks), status: receiver.status });
        if (contentType.startsWith('application/json')) response.writeHead(receiver.status, { 'content-type': 'application/json' }).end('{}');
        else response.writeHead(receiver.status, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1/traces`;
  }

  /** Every span accepted (answered 200) in JSON so far. */
  spans(): ExportedSpan[] {
    return this.requests
      .filter((request) => request.status === 200 && request.contentType.startsWith('application/json'))
      .flatMap((request) => {
        const body = JSON.parse(request.body.toString('utf8')) as {
          resourceSpans: { resource: { attributes: OtlpAttribute[] }; scopeSpans: { spans: Record<string, any>[] }[] }[];
        };
        return body.resourceSpans.flatMap((resourceSpans) =>
          resourceSpans.scopeSpans.flatMap((scope) =>
            scope.spans.map((span) => ({
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId ?? '',
              traceState: span.traceState ?? '',
              name: span.name,
              kind: span.kind,
              attributes: plain(span.attributes),
              statusCode: span.status?.code ?? 0,
              events: (span.events ?? []).map((event: { name: string; attributes?: OtlpAttribute[] }) => ({ name: event.name, attributes: plain(event.attributes) })),
              resource: plain(resourceSpans.resource.attributes),
            })),
          ),
        );
      });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
