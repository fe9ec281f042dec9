/** Credentials on every request: a bearer access token or an API key. */
import type { Interceptor } from "@connectrpc/connect";

/** A bearer access token (a string, or a function asked before every call, e.g. to refresh it) or an API key. */
export type Credentials =
  | { readonly token: string | (() => string | undefined | Promise<string | undefined>) }
  | { readonly apiKey: string };

/** Adds `authorization: Bearer <token>` or `x-api-key: <key>` to every request. */
export function credentialsInterceptor(credentials: Credentials): Interceptor {
  return (next) => async (request) => {
    if ("apiKey" in credentials) {
      request.header.set("x-api-key", credentials.apiKey);
    } else {
      const token =
        typeof credentials.token === "function" ? await credentials.token() : credentials.token;
      if (token) request.header.set("authorization", `Bearer ${token}`);
    }
    return next(request);
  };
}
