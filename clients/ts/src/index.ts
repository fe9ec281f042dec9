/**
 * @forge/client: typed clients of the Forge API for connect-es v2.
 *
 *   import { connectNode } from "@forge/client/node";   // gRPC (HTTP/2) or gRPC-Web
 *   import { connectWeb } from "@forge/client/web";     // browsers: gRPC-Web via Envoy
 *
 * Messages and enums: the namespaces below (e.g. `sandboxv1.ExecEventSchema`), or
 * "@forge/client/gen/forge/sandbox/v1/sandbox_pb" directly.
 */
export { createForge, forgeClient, forgeInterceptors, type Forge, type ForgeOptions } from "./client.js";
export { credentialsInterceptor, type Credentials } from "./interceptors.js";
export {
  Code,
  codeName,
  ForgeError,
  reasonOf,
  REQUEST_ID_HEADER,
  type FieldViolation,
  type QuotaViolation,
} from "./errors.js";
export * as agentsv1 from "./gen/forge/agents/v1/agents_pb.js";
export * as artifactsv1 from "./gen/forge/artifacts/v1/artifacts_pb.js";
export * as authv1 from "./gen/forge/auth/v1/auth_pb.js";
export * as projectsv1 from "./gen/forge/projects/v1/projects_pb.js";
export * as sandboxv1 from "./gen/forge/sandbox/v1/sandbox_pb.js";
export * as rpc from "./gen/google/rpc/error_details_pb.js";
