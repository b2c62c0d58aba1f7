/**
 * The ALS v3 messages we read, as our decoder (als-decoder.ts) presents them: as @grpc/proto-loader would (keepCase,
 * uint64 as strings, enums by name), except the ext_authz metadata, given flat as `authz`. Only the fields metering
 * uses are listed.
 */

/** google.protobuf.Timestamp and Duration. */
export interface SecondsNanosWire {
  seconds?: string | number;
  nanos?: number;
}

/**
 * common_properties.metadata.filter_metadata["envoy.filters.http.ext_authz"]: the Check's dynamic metadata, as
 * fromStruct (grpc/wire.ts) reads a Struct: its string, number and bool values.
 */
export type AuthzMetadata = Record<string, string | number | boolean>;

export interface HttpAccessLogEntryWire {
  common_properties?: {
    start_time?: SecondsNanosWire;
    /** ≈ the request's total duration, as Envoy saw it. */
    time_to_last_downstream_tx_byte?: SecondsNanosWire;
    stream_id?: string;
    /** Absent when the entry has no ext_authz metadata. */
    authz?: AuthzMetadata;
  };
  request?: {
    /** config.core.v3.RequestMethod name, e.g. GET. */
    request_method?: string;
    /** Envoy's x-request-id. */
    request_id?: string;
    request_headers_bytes?: string | number;
    request_body_bytes?: string | number;
    /** Only the headers listed in additional_request_headers_to_log. */
    request_headers?: Record<string, string>;
  };
  response?: {
    response_code?: { value?: number };
    response_headers_bytes?: string | number;
    response_body_bytes?: string | number;
    /** Only the headers listed in additional_response_headers_to_log. */
    response_headers?: Record<string, string>;
  };
}

/** A message's HTTPAccessLogEntry list, located in its bytes: entry i lies at bytes[spans[2i], spans[2i + 1]). */
export interface HttpLogEntries {
  bytes: Buffer;
  spans: number[];
}

export interface StreamAccessLogsMessageWire {
  /** Only in the first message of each stream. */
  identifier?: { node?: { id?: string; cluster?: string }; log_name?: string };
  http_logs?: HttpLogEntries;
  tcp_logs?: { log_entry?: unknown[] };
}

/**
 * What the handler receives in place of a message that does not decode. grpc-js would otherwise end the call with
 * INTERNAL itself, behind the handler's back, so the handler would never learn the stream was over.
 */
export interface UndecodableMessageWire {
  undecodable: string;
}

/** StreamAccessLogsResponse has no fields. */
export type StreamAccessLogsResponseWire = Record<string, never>;

export const extAuthzNamespace = 'envoy.filters.http.ext_authz';
