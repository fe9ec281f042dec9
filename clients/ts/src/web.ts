/** Browser transport: gRPC-Web through Envoy, with the Fetch API (also works in Node 20+). */
import type { Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { createForge, forgeInterceptors, type Forge, type ForgeOptions } from "./client.js";

export interface WebOptions extends ForgeOptions {
  /** A fetch of your own, e.g. to set `credentials`; defaults to the global fetch. */
  readonly fetch?: typeof globalThis.fetch;
}

export function createWebTransport(options: WebOptions): Transport {
  return createGrpcWebTransport({
    baseUrl: options.baseUrl,
    interceptors: forgeInterceptors(options),
    defaultTimeoutMs: options.defaultTimeoutMs,
    fetch: options.fetch,
  });
}

/** Clients of every service from a browser (base URL: the Envoy gateway, e.g. location.origin). */
export function connectWeb(options: WebOptions): Forge {
  return createForge(createWebTransport(options));
}
