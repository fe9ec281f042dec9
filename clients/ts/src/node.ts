/**
 * Node transports: native gRPC over HTTP/2 (cleartext h2c to the server or to Envoy, or
 * TLS for https:// URLs), or gRPC-Web over HTTP/1.1 through Envoy.
 */
import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { createForge, forgeInterceptors, type Forge, type ForgeOptions } from "./client.js";

/** "grpc": HTTP/2 to the server or Envoy; "grpc-web": HTTP/1.1 to Envoy. */
export type NodeProtocol = "grpc" | "grpc-web";

export interface NodeOptions extends ForgeOptions {
  /** Defaults to "grpc". */
  readonly protocol?: NodeProtocol;
}

export function createNodeTransport(options: NodeOptions): Transport {
  const common = {
    baseUrl: options.baseUrl,
    interceptors: forgeInterceptors(options),
    defaultTimeoutMs: options.defaultTimeoutMs,
  };
  return (options.protocol ?? "grpc") === "grpc"
    ? createGrpcTransport(common)
    : createGrpcWebTransport({ ...common, httpVersion: "1.1" });
}

/** Clients of every service from Node. */
export function connectNode(options: NodeOptions): Forge {
  return createForge(createNodeTransport(options));
}
