/**
 * @forge/client against the real server and Envoy, over every route (gRPC to the server,
 * gRPC through Envoy, gRPC-Web from Node and with the browser's fetch transport): sign up
 * and call with a token and an API key, errors with their reason, a chat whose tokens
 * stream in, and a RunCode whose output and exit code stream back from a sandbox.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ForgeError, reasonOf, type Forge } from "@forge/client";
import { PASSWORD, echoTokenDelayMs, gatewayUrl, routes, uniqueEmail, type Route } from "./env.js";

async function signUp(route: Route, prefix: string): Promise<{ forge: Forge; userId: string }> {
  const email = uniqueEmail(prefix);
  const registered = await route.connect().auth.register({ email, password: PASSWORD, displayName: "TS Client" });
  const token = registered.tokens?.accessToken;
  assert.ok(token, "Register returns an access token");
  return { forge: route.connect({ token }), userId: registered.user?.id ?? "" };
}

async function failure(call: () => Promise<unknown>): Promise<ForgeError> {
  try {
    await call();
  } catch (error) {
    assert.ok(error instanceof ForgeError, `a ForgeError, not ${String(error)}`);
    return error;
  }
  assert.fail("the call succeeded");
}

const decoder = new TextDecoder();

for (const route of routes) {
  describe(route.name, () => {
    it("registers, then calls with the access token and with an API key", async () => {
      const email = uniqueEmail("ts-register");
      const registered = await route.connect().auth.register({ email, password: PASSWORD, displayName: "TS Client" });
      assert.equal(registered.user?.email, email);
      const token = registered.tokens?.accessToken ?? "";
      assert.notEqual(token, "");

      const withToken = route.connect({ token: () => token });
      const me = await withToken.auth.getCurrentUser({});
      assert.equal(me.id, registered.user?.id);

      const key = await withToken.auth.createApiKey({ name: "ts tests" });
      assert.match(key.secret, /^fk_live_/);
      const viaKey = await route.connect({ apiKey: key.secret }).auth.getCurrentUser({});
      assert.equal(viaKey.id, registered.user?.id);
    });

    it("fails with the ErrorInfo reason, field violations and the request id", async () => {
      const email = uniqueEmail("ts-twice");
      const anonymous = route.connect();
      await anonymous.auth.register({ email, password: PASSWORD, displayName: "First" });

      const taken = await failure(() =>
        anonymous.auth.register({ email, password: PASSWORD, displayName: "Second" }),
      );
      assert.equal(taken.code, Code.AlreadyExists);
      assert.equal(taken.codeName, "ALREADY_EXISTS");
      assert.equal(taken.reason, "EMAIL_TAKEN");
      assert.equal(reasonOf(taken), "EMAIL_TAKEN");
      assert.equal(reasonOf(taken.cause), "EMAIL_TAKEN", "reasonOf reads a ConnectError too");
      assert.ok(taken.requestId, "the x-request-id of the failed call");
      assert.match(taken.message, /ALREADY_EXISTS: .*\[EMAIL_TAKEN\]/);

      const invalid = await failure(() =>
        anonymous.auth.register({ email: "not-an-email", password: PASSWORD, displayName: "Bad" }),
      );
      assert.equal(invalid.code, Code.InvalidArgument);
      assert.ok(
        invalid.fieldViolations.some((v) => v.field === "email"),
        `a violation of "email" in ${JSON.stringify(invalid.fieldViolations)}`,
      );

      const unsigned = await failure(() => anonymous.auth.getCurrentUser({}));
      assert.equal(unsigned.code, Code.Unauthenticated);
      assert.ok(unsigned.reason, "UNAUTHENTICATED carries a reason");

      // A stream that fails is a ForgeError too, thrown by the loop reading it.
      const refused = await failure(async () => {
        for await (const event of anonymous.sandbox.runCode({ projectId: "none", language: "python", code: "1" })) {
          assert.fail(`no event before the failure, got ${event.event.case}`);
        }
      });
      assert.equal(refused.code, Code.Unauthenticated);
      assert.equal(refused.reason, unsigned.reason);
    });

    it("streams a chat answer token by token", async () => {
      const { forge } = await signUp(route, "ts-chat");
      const project = await forge.projects.createProject({ project: { name: "ts chat" } });
      const conversation = await forge.agents.createConversation({
        projectId: project.id,
        conversation: { title: "ts", model: "echo" },
      });
      const content = "please say these twelve words back to me one at a time";

      const kinds: (string | undefined)[] = [];
      const arrivals: number[] = [];
      let text = "";
      let assistantMessageId = "";
      for await (const event of forge.agents.chat({ conversationId: conversation.id, content })) {
        kinds.push(event.event.case);
        if (event.event.case === "started") assistantMessageId = event.event.value.assistantMessageId;
        if (event.event.case === "delta") {
          text += event.event.value.text;
          arrivals.push(performance.now());
        }
      }

      assert.equal(kinds[0], "started");
      assert.equal(kinds.at(-1), "completed");
      assert.ok(arrivals.length >= 12, `${arrivals.length} deltas`);
      assert.ok(text.includes("twelve words"), text);
      // Relayed as produced (one token every echoTokenDelayMs), not buffered to the end.
      const spread = (arrivals.at(-1) ?? 0) - (arrivals[0] ?? 0);
      const paced = (arrivals.length - 1) * echoTokenDelayMs;
      assert.ok(spread >= paced / 2, `deltas arrived within ${spread} ms, paced over ${paced} ms`);

      const stored = await forge.agents.listMessages({ conversationId: conversation.id });
      const answer = stored.messages.find((m) => m.id === assistantMessageId);
      assert.equal(answer?.content, text);
    });

    it("streams RunCode output from a sandbox, then the exit code", async () => {
      const { forge } = await signUp(route, "ts-run");
      const project = await forge.projects.createProject({ project: { name: "ts run" } });
      const code = "import sys\nprint('hello from', sys.stdin.read())\nprint('oops', file=sys.stderr)\nsys.exit(3)";

      const kinds: (string | undefined)[] = [];
      let stdout = "";
      let stderr = "";
      let exitCode: number | undefined;
      for await (const event of forge.sandbox.runCode({
        projectId: project.id,
        language: "python",
        code,
        stdin: new TextEncoder().encode("typescript"),
      })) {
        kinds.push(event.event.case);
        if (event.event.case === "stdout") stdout += decoder.decode(event.event.value);
        if (event.event.case === "stderr") stderr += decoder.decode(event.event.value);
        if (event.event.case === "exit") exitCode = event.event.value.exitCode;
      }

      assert.equal(kinds[0], "started");
      assert.equal(kinds.at(-1), "exit");
      assert.equal(stdout, "hello from typescript\n");
      assert.equal(stderr, "oops\n");
      assert.equal(exitCode, 3);
    });
  });
}

describe("from a browser", () => {
  it("Envoy's CORS lets a page of another origin make the browser transport's calls", async () => {
    const origin = "http://console.example";
    // What connect-web sends (and this package's credentials), asked for in a preflight.
    const wanted = ["authorization", "content-type", "grpc-timeout", "x-api-key", "x-grpc-web", "x-user-agent"];
    const preflight = await fetch(`${gatewayUrl}/forge.auth.v1.AuthService/GetCurrentUser`, {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": wanted.join(","),
      },
    });
    assert.ok(preflight.ok, `preflight answered ${preflight.status}`);
    assert.equal(preflight.headers.get("access-control-allow-origin"), origin);
    const allowed = (preflight.headers.get("access-control-allow-headers") ?? "").toLowerCase();
    for (const header of wanted) assert.ok(allowed.includes(header), `${header} allowed: ${allowed}`);

    // The failed call's status, details and request id are readable by the page.
    const call = await fetch(`${gatewayUrl}/forge.auth.v1.AuthService/GetCurrentUser`, {
      method: "POST",
      headers: { origin, "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: new Uint8Array([0, 0, 0, 0, 0]),
    });
    const exposed = (call.headers.get("access-control-expose-headers") ?? "").toLowerCase();
    for (const header of ["grpc-status", "grpc-message", "grpc-status-details-bin", "x-request-id"]) {
      assert.ok(exposed.includes(header), `${header} exposed: ${exposed}`);
    }
    await call.arrayBuffer();
  });
});
