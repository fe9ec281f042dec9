// Sign in, or register a new account, then hand the tokens to the app.
import { type Api, describeError, toSession } from "../api.js";
import { field, h, mount } from "../dom.js";
import type { Session } from "../session.js";

export function signInView(root: HTMLElement, api: Api, signedIn: (s: Session) => void): void {
  const error = h("p", { class: "error", role: "alert", id: "signin-error" });
  const form = h(
    "form",
    { class: "card narrow", id: "signin" },
    h("h1", {}, "Forge console"),
    h("label", {}, "Email", h("input", { name: "email", type: "email", required: true, autocomplete: "username" })),
    h(
      "label",
      {},
      "Password",
      h("input", { name: "password", type: "password", required: true, autocomplete: "current-password" }),
    ),
    h("label", {}, "Display name (to register)", h("input", { name: "displayName", autocomplete: "name" })),
    h(
      "div",
      { class: "row" },
      h("button", { type: "submit", class: "primary", id: "signin-submit" }, "Sign in"),
      h("button", { type: "button", id: "register-submit", onclick: () => void submit(true) }, "Register"),
    ),
    error,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void submit(false);
  });

  async function submit(register: boolean): Promise<void> {
    if (!form.reportValidity()) return;
    const email = field<HTMLInputElement>(form, "email").value.trim();
    const password = field<HTMLInputElement>(form, "password").value;
    const displayName = field<HTMLInputElement>(form, "displayName").value.trim();
    error.textContent = "";
    form.setAttribute("aria-busy", "true");
    try {
      const response = register
        ? await api.auth.register({ email, password, displayName })
        : await api.auth.login({ email, password });
      signedIn(toSession(email, response.tokens));
    } catch (err) {
      error.textContent = describeError(err);
    } finally {
      form.removeAttribute("aria-busy");
    }
  }

  mount(root, form);
}
