import type { Api } from "./api.js";

/** What a view gets: the API, where to draw, and the lifetime of what it starts. */
export interface ViewContext {
  api: Api;
  root: HTMLElement;
  /** Aborted when the user navigates away: cancels the view's calls and streams. */
  signal: AbortSignal;
  /** Shows an error (its message and stable reason) in the page's notice area. */
  notify(err: unknown): void;
  /** Navigates to a hash route, e.g. `#/p/${id}/board`. */
  go(hash: string): void;
}
