/**
 * What the tests run against, from the environment (tests/clients/test_ts_client.py sets it):
 *   FORGE_GRPC_URL     the server itself (gRPC over h2c), e.g. http://127.0.0.1:50051
 *   FORGE_GATEWAY_URL  Envoy in front of it (gRPC and gRPC-Web), e.g. http://127.0.0.1:8080
 *   FORGE_ECHO_TOKEN_DELAY_MS  the pace of the server's echo model (default 20)
 */
import type { Credentials, Forge } from "@forge/client";
import { connectNode } from "@forge/client/node";
import { connectWeb } from "@forge/client/web";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run the tests through tests/clients/test_ts_client.py)`);
  return value;
}

export const grpcUrl = required("FORGE_GRPC_URL");
export const gatewayUrl = required("FORGE_GATEWAY_URL");
export const echoTokenDelayMs = Number(process.env["FORGE_ECHO_TOKEN_DELAY_MS"] ?? "20");

/** One way of reaching the API: a name for the test report and a client factory. */
export interface Route {
  readonly name: string;
  connect(credentials?: Credentials): Forge;
}

const TIMEOUT_MS = 60_000;

export const routes: readonly Route[] = [
  {
    name: "gRPC (HTTP/2) to the server",
    connect: (credentials) =>
      connectNode({ baseUrl: grpcUrl, protocol: "grpc", credentials, defaultTimeoutMs: TIMEOUT_MS }),
  },
  {
    name: "gRPC (HTTP/2) through Envoy",
    connect: (credentials) =>
      connectNode({ baseUrl: gatewayUrl, protocol: "grpc", credentials, defaultTimeoutMs: TIMEOUT_MS }),
  },
  {
    name: "gRPC-Web (Node HTTP/1.1) through Envoy",
    connect: (credentials) =>
      connectNode({ baseUrl: gatewayUrl, protocol: "grpc-web", credentials, defaultTimeoutMs: TIMEOUT_MS }),
  },
  {
    name: "gRPC-Web (the browser transport, fetch) through Envoy",
    connect: (credentials) =>
      connectWeb({ baseUrl: gatewayUrl, credentials, defaultTimeoutMs: TIMEOUT_MS }),
  },
];

let counter = 0;

export function uniqueEmail(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${Date.now()}-${counter}@example.com`;
}

export const PASSWORD = "Corr3ct-Horse-ts";
