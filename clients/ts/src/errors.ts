/**
 * One error type for every failed call: ForgeError, with the server's google.rpc error
 * details (ErrorInfo, BadRequest, QuotaFailure, RetryInfo, RequestInfo) decoded into plain
 * fields. connect-es already parses `grpc-status-details-bin` into ConnectError.details, over
 * gRPC and gRPC-Web alike; this module only reads them.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Duration } from "@bufbuild/protobuf/wkt";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  QuotaFailureSchema,
  RequestInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";

export { Code };

/** The header (response metadata) carrying the id to quote when reporting a failure. */
export const REQUEST_ID_HEADER = "x-request-id";

/** One bad field of a request (google.rpc.BadRequest). */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
  readonly reason: string;
}

/** One exceeded quota (google.rpc.QuotaFailure). */
export interface QuotaViolation {
  readonly subject: string;
  readonly description: string;
}

/** gRPC's name of a status code, e.g. "INVALID_ARGUMENT". */
export function codeName(code: Code): string {
  const name = Code[code] as string | undefined;
  return name === undefined ? "UNKNOWN" : name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/**
 * A failed call. `code` is the gRPC status (connect's `Code`, same numbers), `message` the
 * server's message, `reason` the stable ErrorInfo reason (e.g. "EMAIL_TAKEN") with its
 * `domain` and `metadata`, `fieldViolations` from BadRequest, `retryDelayMs` from RetryInfo,
 * and `requestId` (the x-request-id response header, else RequestInfo) to quote when
 * reporting it. `headers` holds the response headers and trailers; `cause` the ConnectError.
 */
export class ForgeError extends Error {
  override readonly name = "ForgeError";
  readonly code: Code;
  readonly codeName: string;
  readonly reason: string | undefined;
  readonly domain: string | undefined;
  readonly metadata: Readonly<Record<string, string>>;
  readonly fieldViolations: readonly FieldViolation[];
  readonly quotaViolations: readonly QuotaViolation[];
  readonly retryDelayMs: number | undefined;
  readonly requestId: string | undefined;
  readonly headers: Headers;
  override readonly cause: ConnectError;

  constructor(error: ConnectError) {
    const info = error.findDetails(ErrorInfoSchema)[0];
    const name = codeName(error.code);
    const requestId =
      error.metadata.get(REQUEST_ID_HEADER) ??
      error.findDetails(RequestInfoSchema)[0]?.requestId ??
      undefined;
    let text = `${name}: ${error.rawMessage}`;
    if (info?.reason) text += ` [${info.reason}]`;
    if (requestId) text += ` (request id ${requestId})`;
    super(text, { cause: error });
    this.cause = error;
    this.code = error.code;
    this.codeName = name;
    this.reason = info?.reason || undefined;
    this.domain = info?.domain || undefined;
    this.metadata = { ...(info?.metadata ?? {}) };
    this.fieldViolations = error
      .findDetails(BadRequestSchema)
      .flatMap((bad) => bad.fieldViolations)
      .map((v) => ({ field: v.field, description: v.description, reason: v.reason }));
    this.quotaViolations = error
      .findDetails(QuotaFailureSchema)
      .flatMap((quota) => quota.violations)
      .map((v) => ({ subject: v.subject, description: v.description }));
    const delay = error.findDetails(RetryInfoSchema)[0]?.retryDelay;
    this.retryDelayMs = delay === undefined ? undefined : durationMs(delay);
    this.requestId = requestId;
    this.headers = error.metadata;
  }

  /** The server's message, without the code in front. */
  get rawMessage(): string {
    return this.cause.rawMessage;
  }

  /** Any caught value as a ForgeError (a ForgeError is returned as it is). */
  static from(error: unknown): ForgeError {
    return error instanceof ForgeError ? error : new ForgeError(ConnectError.from(error));
  }
}

/** The ErrorInfo reason of a failed call (a ForgeError or a ConnectError), if it has one. */
export function reasonOf(error: unknown): string | undefined {
  if (error instanceof ForgeError) return error.reason;
  if (error instanceof ConnectError) return error.findDetails(ErrorInfoSchema)[0]?.reason || undefined;
  return undefined;
}

function durationMs(duration: Duration): number {
  return Number(duration.seconds) * 1000 + Math.round(duration.nanos / 1_000_000);
}
