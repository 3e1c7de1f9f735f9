// Sign in with an API token; it stays in this browser tab's sessionStorage only.

import { ApiError, get, getToken, setToken } from "../api.js";
import { errorBox, h, replace } from "../dom.js";

export async function loginPage(ctx) {
  ctx.setHeader("Sign in");
  const next = ctx.query.next && ctx.query.next.startsWith("/") ? ctx.query.next : "/";
  const message = h("div", { class: "form-message" });
  const input = h("input", { type: "password", name: "token", id: "token", autocomplete: "current-password", required: true, placeholder: "API token" });
  const form = h(
    "form",
    { class: "card login-card", "data-form": "login" },
    h("p", "This server requires an API token (", h("code", "api.token"), " or ", h("code", "FLOWDAPT__API__TOKEN"), "). It is kept in this browser tab only and sent as ", h("code", "Authorization: Bearer"), "."),
    h("label", { for: "token" }, "Token"),
    input,
    message,
    h("div", { class: "form-actions" }, h("button", { type: "submit" }, "Sign in"))
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const previous = getToken();
    setToken(input.value.trim());
    try {
      await get("/status");
      ctx.navigate(next, { replace: true });
    } catch (err) {
      setToken(previous);
      const detail = err instanceof ApiError && err.status === 401 ? "that token was refused by the server" : err.message;
      replace(message, errorBox(detail));
    }
  });
  // A server without tokens (or a valid stored token) does not need this page.
  try {
    await get("/status", null, ctx.signal);
    if (ctx.alive()) {
      replace(ctx.body, h("div", { class: "card login-card" }, h("p", getToken() ? "You are signed in." : "This server does not require a token."), h("p", h("a", { href: "#" + next }, "Continue"))));
      return;
    }
  } catch (err) {
    if (err.name === "AbortError") throw err;
  }
  replace(ctx.body, form);
  input.focus();
}
