// The one place the console meets @forge/client: clients of every service over gRPC-Web
// through the Envoy that serves this page, errors as ForgeError (code, stable reason,
// request id), and the access token refreshed shortly before it expires.
import { Code, ForgeError, type Forge } from "@forge/client";
import { connectWeb } from "@forge/client/web";

import type { Tokens } from "@forge/client/gen/forge/auth/v1/auth_pb";

import { clearSession, loadSession, saveSession, type Session } from "./session.js";

export type Api = Forge;

/** Refresh the access token when it has less than this left. */
const REFRESH_MARGIN_MS = 30_000;

/** Clients without credentials: Register, Login, RefreshToken. */
export function anonymousApi(): Api {
  return connectWeb({ baseUrl: location.origin });
}

/** Clients that send the session's access token (refreshed as needed); `expired` is called
 * when the session cannot be refreshed any more (revoked, or the refresh token expired). */
export function sessionApi(expired: () => void): Api {
  const anonymous = anonymousApi();
  let refreshing: Promise<Session> | null = null;

  async function refresh(session: Session): Promise<Session> {
    try {
      const response = await anonymous.auth.refreshToken({ refreshToken: session.refreshToken });
      const next = toSession(session.email, response.tokens);
      saveSession(next);
      return next;
    } catch (err) {
      clearSession();
      expired();
      throw err;
    }
  }

  async function token(): Promise<string | undefined> {
    const session = loadSession();
    if (session === null) return undefined;
    if (session.accessExpiresAt - Date.now() > REFRESH_MARGIN_MS) return session.accessToken;
    refreshing ??= refresh(session).finally(() => {
      refreshing = null;
    });
    return (await refreshing).accessToken;
  }

  return connectWeb({ baseUrl: location.origin, credentials: { token } });
}

export function toSession(email: string, tokens: Tokens | undefined): Session {
  if (tokens === undefined) throw new Error("the server answered without tokens");
  const expires = tokens.accessTokenExpireTime;
  return {
    email,
    accessToken: tokens.accessToken,
    accessExpiresAt: expires ? Number(expires.seconds) * 1000 : Date.now() + 60_000,
    refreshToken: tokens.refreshToken,
  };
}

/** A call or stream that ended because the view went away (AbortSignal). */
export function isCancel(err: unknown): boolean {
  if (err instanceof DOMException && err.name === "AbortError") return true;
  return err instanceof ForgeError && err.code === Code.Canceled;
}

/** "CODE: message [REASON] (request id …)" for a ForgeError; the message otherwise. */
export function describeError(err: unknown): string {
  if (err instanceof ForgeError) return err.message;
  return err instanceof Error ? err.message : String(err);
}
