// The signed-in user's tokens, kept in sessionStorage (per tab, gone when it closes).
// A reference choice: an integrator may prefer an httpOnly cookie set by their own backend.

export interface Session {
  email: string;
  accessToken: string;
  /** epoch milliseconds */
  accessExpiresAt: number;
  refreshToken: string;
}

const KEY = "forge.console.session";

export function loadSession(): Session | null {
  const raw = sessionStorage.getItem(KEY);
  if (raw === null) return null;
  try {
    return JSON.parse(raw) as Session;
  } catch {
    sessionStorage.removeItem(KEY);
    return null;
  }
}

export function saveSession(session: Session): void {
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

export function clearSession(): void {
  sessionStorage.removeItem(KEY);
}
