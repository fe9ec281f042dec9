/** One typed client per Forge service, over any connect-es transport. */
import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { ForgeError } from "./errors.js";
import { AgentService } from "./gen/forge/agents/v1/agents_pb.js";
import { ArtifactService } from "./gen/forge/artifacts/v1/artifacts_pb.js";
import { AuthService } from "./gen/forge/auth/v1/auth_pb.js";
import { DeploymentService } from "./gen/forge/deployments/v1/deployments_pb.js";
import { ProjectService } from "./gen/forge/projects/v1/projects_pb.js";
import { SandboxService } from "./gen/forge/sandbox/v1/sandbox_pb.js";
import { credentialsInterceptor, type Credentials } from "./interceptors.js";

/**
 * The services of the Forge API. Every failure, of a call or in the middle of a
 * stream, is thrown as a ForgeError.
 */
export interface Forge {
  readonly auth: Client<typeof AuthService>;
  readonly projects: Client<typeof ProjectService>;
  readonly agents: Client<typeof AgentService>;
  readonly sandbox: Client<typeof SandboxService>;
  readonly artifacts: Client<typeof ArtifactService>;
  readonly deployments: Client<typeof DeploymentService>;
}

/** What every transport factory of this package takes. */
export interface ForgeOptions {
  /** The server or the Envoy gateway, e.g. "http://localhost:8080". */
  readonly baseUrl: string;
  /** A bearer access token or an API key for every call; none for Register and Login. */
  readonly credentials?: Credentials | undefined;
  /** Deadline of calls that set no `timeoutMs` of their own. */
  readonly defaultTimeoutMs?: number | undefined;
  /** More interceptors, run after the credentials one. */
  readonly interceptors?: readonly Interceptor[] | undefined;
}

/** The interceptors of a transport made from `options`: credentials, then the caller's. */
export function forgeInterceptors(options: ForgeOptions): Interceptor[] {
  const chain: Interceptor[] = [];
  if (options.credentials) chain.push(credentialsInterceptor(options.credentials));
  chain.push(...(options.interceptors ?? []));
  return chain;
}

/** Clients of every service over one transport (see `@forge/client/node` and `/web`). */
export function createForge(transport: Transport): Forge {
  return {
    auth: forgeClient(AuthService, transport),
    projects: forgeClient(ProjectService, transport),
    agents: forgeClient(AgentService, transport),
    sandbox: forgeClient(SandboxService, transport),
    artifacts: forgeClient(ArtifactService, transport),
    deployments: forgeClient(DeploymentService, transport),
  };
}

/**
 * connect-es's client of `service` whose methods throw ForgeError. (An interceptor cannot do
 * it: connect turns whatever an interceptor throws back into a ConnectError.)
 */
export function forgeClient<S extends DescService>(service: S, transport: Transport): Client<S> {
  const client = createClient(service, transport) as Record<string, (...args: unknown[]) => unknown>;
  const wrapped: Record<string, (...args: unknown[]) => unknown> = {};
  for (const method of service.methods) {
    const call = client[method.localName];
    if (call === undefined) continue;
    wrapped[method.localName] =
      method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming"
        ? (...args) => rethrowing(call(...args) as AsyncIterable<unknown>)
        : async (...args) => {
            try {
              return await call(...args);
            } catch (error) {
              throw ForgeError.from(error);
            }
          };
  }
  return wrapped as Client<S>;
}

async function* rethrowing<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (error) {
    throw ForgeError.from(error);
  }
}
